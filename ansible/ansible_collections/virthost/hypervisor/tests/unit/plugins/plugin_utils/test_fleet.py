# -*- coding: utf-8 -*-
# Copyright: virthost contributors
# Apache License 2.0 (see galaxy.yml)
"""The fleet summary, from task results made by the real mapping on captured reports."""

from __future__ import annotations

import os

from ansible_collections.virthost.hypervisor.plugins.filter.fleet import FilterModule
from ansible_collections.virthost.hypervisor.plugins.plugin_utils import fleet, report

FIXTURES = os.path.join(os.path.dirname(__file__), 'fixtures')


def fixture(name):
    with open(os.path.join(FIXTURES, name), encoding='utf-8') as f:
        return f.read()


def results():
    noop = report.bootstrap_result(0, fixture('bootstrap-apply-noop-vm.json'), '')
    noop['binary'] = {'changed': True}
    failed = report.bootstrap_result(1, fixture('bootstrap-apply-pool-failed-vm.json'), '')
    pending = report.bootstrap_result(4, fixture('bootstrap-check-fresh-debian12.json'), '', True)
    passed = report.validate_result(0, fixture('validate-pass-vm.json'), '')
    fails = report.validate_result(1, fixture('validate-fails-unbootstrapped.json'), '')
    usage = report.validate_result(2, '', fixture('validate-usage-nodes.stderr'))
    return {
        'hv01': {'bootstrap': noop, 'validate': passed},
        'hv02': {'bootstrap': failed, 'validate': {'skipped': True, 'skip_reason': 'Conditional result was False'}},
        'hv03': {'bootstrap': {'unreachable': True, 'msg': 'Failed to connect to the host via ssh'}},
        'hv04': {'bootstrap': pending, 'validate': fails},
        'hv05': {'validate': usage},
        'hv06': {},
    }


def test_every_host_gets_a_row_whatever_happened():
    s = fleet.summarize(results(), ['hv01', 'hv02', 'hv03', 'hv04', 'hv05', 'hv06', 'hv07'])
    rows = {r['host']: r for r in s['hosts']}
    assert list(rows) == ['hv01', 'hv02', 'hv03', 'hv04', 'hv05', 'hv06', 'hv07']
    assert [rows[h]['bootstrap']['status'] for h in rows] == [
        'ok', 'failed', 'unreachable', 'pending', 'not run', 'not run', 'not run']
    assert [rows[h]['validate']['status'] for h in rows] == [
        'WARN', 'skipped', 'not run', 'FAIL', 'error', 'not run', 'not run']
    assert rows['hv01']['bootstrap']['binary_copied'] is True
    assert rows['hv02']['bootstrap']['failed_steps'] == ['pool']
    assert rows['hv04']['bootstrap']['changed_steps'] == ['packages', 'devkvm', 'user', 'polkit', 'pool']
    v = rows['hv04']['validate']
    assert (v['fail'], len(v['failing'])) == (6, 6)
    assert 'user.exists' in v['failing']
    assert s['totals'] == {
        'hosts': 7,
        'bootstrap': {'failed': 1, 'not run': 3, 'ok': 1, 'pending': 1, 'unreachable': 1},
        'validate': {'FAIL': 1, 'WARN': 1, 'error': 1, 'not run': 3, 'skipped': 1},
    }
    assert s['kind'] == 'FleetSummary'


def test_markdown_table():
    s = fleet.summarize(results())
    md = fleet.markdown(s)
    lines = md.splitlines()
    assert lines[0] == '| host | bootstrap | PASS | WARN | FAIL | failing checks |'
    hv01 = next(line for line in lines if line.startswith('| hv01 '))
    p = s['hosts'][0]['validate']
    assert hv01 == f"| hv01 | ok | {p['pass']} | {p['warn']} | 0 |  |"
    hv04 = next(line for line in lines if line.startswith('| hv04 '))
    assert hv04.startswith('| hv04 | pending (packages, devkvm, user, polkit, pool) | 20 | 8 | 6 | ')
    assert 'package.libguestfs-tools, package.libguestfs-xfs' in hv04
    assert '| hv02 | failed (pool) |  |  |  | validate skipped |' in lines
    assert '| hv03 | unreachable |  |  |  | validate not run |' in lines
    assert any(line.startswith("| hv05 | not run |  |  |  | validate error: validate exited 2") for line in lines)
    assert lines[-1] == ('6 host(s); bootstrap: 1 failed, 2 not run, 1 ok, 1 pending, 1 unreachable; '
                         'validate: 1 FAIL, 1 WARN, 1 error, 2 not run, 1 skipped')


def test_a_pipe_in_a_message_does_not_break_the_table():
    s = fleet.summarize({'a|b': {'validate': {'failed': True, 'msg': 'x | y'}}})
    row = fleet.markdown(s).splitlines()[2]
    assert row == '| a\\|b | not run |  |  |  | validate error: x \\| y |'


def test_the_filters():
    f = FilterModule().filters()
    r = results()
    hostvars = {h: {'virthost_bootstrap': v.get('bootstrap'), 'virthost_validate': v.get('validate')}
                for h, v in r.items()}
    s = f['fleet_summary'](hostvars, ['hv01', 'hv03', 'nowhere'])
    assert [row['host'] for row in s['hosts']] == ['hv01', 'hv03', 'nowhere']
    assert s['hosts'][2]['bootstrap'] == {'status': 'not run'}
    assert f['fleet_markdown'](s).count('\n| hv') == 2
