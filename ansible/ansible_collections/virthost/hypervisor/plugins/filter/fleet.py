# -*- coding: utf-8 -*-
# Copyright: virthost contributors
# Apache License 2.0 (see galaxy.yml)
"""The fleet_summary and fleet_markdown filters (documented in fleet_summary.yml and
fleet_markdown.yml beside this file)."""

from __future__ import annotations

from ansible_collections.virthost.hypervisor.plugins.plugin_utils import fleet


def fleet_summary(hostvars, hosts, bootstrap_var='virthost_bootstrap', validate_var='virthost_validate'):
    """One row per host of `hosts`, from what each registered as bootstrap_var and validate_var."""
    results = {}
    for h in hosts:
        hv = hostvars[h] if h in hostvars else {}
        results[h] = {'bootstrap': hv.get(bootstrap_var), 'validate': hv.get(validate_var)}
    return fleet.summarize(results, hosts)


def fleet_markdown(summary):
    return fleet.markdown(summary)


class FilterModule(object):

    def filters(self):
        return {'fleet_summary': fleet_summary, 'fleet_markdown': fleet_markdown}
