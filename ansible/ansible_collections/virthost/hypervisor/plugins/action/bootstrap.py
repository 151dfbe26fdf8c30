# -*- coding: utf-8 -*-
# Copyright: virthost contributors
# Apache License 2.0 (see galaxy.yml)
"""virthost.hypervisor.bootstrap: documentation in plugins/modules/bootstrap.py."""

from __future__ import annotations

from ansible_collections.virthost.hypervisor.plugins.plugin_utils import report
from ansible_collections.virthost.hypervisor.plugins.plugin_utils.binary_action import (
    KEY_OPTIONS,
    BinaryAction,
)


class ActionModule(BinaryAction):

    NAME = 'bootstrap'
    ARGUMENT_SPEC = dict(
        binary={'type': 'path', 'required': True},
        remote_path={'type': 'str', 'default': '/usr/local/libexec/virthost/bootstrap'},
        user={'type': 'str'},
        sudo={'type': 'bool', 'default': False},
        os_family={'type': 'str', 'choices': ['auto', 'yum', 'dnf', 'apt']},
        lock_wait={'type': 'int'},
        extra_args={'type': 'list', 'elements': 'str', 'default': []},
        **KEY_OPTIONS
    )

    def argv(self, path, params, root_files, stack_files, check):
        return report.bootstrap_argv(path, params, root_files, stack_files, check)

    def result_of(self, rc, stdout, stderr, params, check):
        return report.bootstrap_result(rc, stdout, stderr, check)

    def diff_of(self, result):
        return report.bootstrap_diff(result.get('steps') or [])
