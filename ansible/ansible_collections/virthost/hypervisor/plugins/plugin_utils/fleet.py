# -*- coding: utf-8 -*-
# Copyright: virthost contributors
# Apache License 2.0 (see galaxy.yml)
"""The fleet summary: every host's bootstrap and validate results in one document.

The input is what the playbooks registered per host (`virthost_bootstrap`,
`virthost_validate`): a task result, a failed one, an unreachable one, a skipped one, or
nothing when the task did not run there. Every host asked for gets a row, whatever happened,
so a fleet run loses no host.
"""

from __future__ import annotations

SCHEMA = 'virthost.dev/v1'


def _not_a_result(res):
    """The row of a task that gave no result of its own (not run, unreachable, skipped), else None."""
    if not isinstance(res, dict) or not res:
        return {'status': 'not run'}
    if res.get('unreachable'):
        return {'status': 'unreachable', 'msg': res.get('msg', '')}
    if res.get('skipped'):
        return {'status': 'skipped', 'msg': res.get('skip_reason', res.get('msg', ''))}
    return None


def _bootstrap_row(res):
    none = _not_a_result(res)
    if none:
        return none
    row = {
        'changed_steps': list(res.get('changed_steps') or []),
        'failed_steps': list(res.get('failed_steps') or []),
        'binary_copied': bool((res.get('binary') or {}).get('changed')),
        'waited_for_lock': bool(res.get('waited_for_lock')),
        'mode': res.get('mode'),
        'msg': res.get('msg', ''),
    }
    if res.get('failed'):
        row['status'] = 'failed'
    elif row['changed_steps']:
        row['status'] = 'pending' if res.get('mode') == 'check' else 'changed'
    else:
        row['status'] = 'ok'
    return row


def _validate_row(res):
    none = _not_a_result(res)
    if none:
        return none
    if 'checks' not in res:
        return {'status': 'error', 'msg': res.get('msg', '')}
    summary = res.get('summary') or {}
    checks = res.get('checks') or []
    row = {
        'pass': summary.get('pass', sum(c.get('status') == 'PASS' for c in checks)),
        'warn': summary.get('warn', sum(c.get('status') == 'WARN' for c in checks)),
        'fail': summary.get('fail', sum(c.get('status') == 'FAIL' for c in checks)),
        'failing': [c.get('id') for c in checks if c.get('status') == 'FAIL'],
        'warning': [c.get('id') for c in checks if c.get('status') == 'WARN'],
        'msg': res.get('msg', ''),
    }
    row['status'] = 'FAIL' if row['fail'] else ('WARN' if row['warn'] else 'PASS')
    return row


def summarize(results, hosts=None):
    """The fleet summary of {host: {'bootstrap': result, 'validate': result}}, one row per
    host of `hosts` (default: every host in results), in that order."""
    hosts = list(results) if hosts is None else list(hosts)
    rows = []
    for h in hosts:
        r = results.get(h) or {}
        rows.append({
            'host': h,
            'bootstrap': _bootstrap_row(r.get('bootstrap')),
            'validate': _validate_row(r.get('validate')),
        })
    totals = {'hosts': len(rows)}
    for part in ('bootstrap', 'validate'):
        counts = {}
        for row in rows:
            s = row[part]['status']
            counts[s] = counts.get(s, 0) + 1
        totals[part] = dict(sorted(counts.items()))
    return {'apiVersion': SCHEMA, 'kind': 'FleetSummary', 'hosts': rows, 'totals': totals}


def _cell(text):
    return str(text).replace('|', '\\|').replace('\n', ' ')


def markdown(summary):
    """The fleet summary as a Markdown table: host, bootstrap, PASS, WARN, FAIL, failing ids."""
    out = [
        '| host | bootstrap | PASS | WARN | FAIL | failing checks |',
        '|---|---|---:|---:|---:|---|',
    ]
    for row in summary.get('hosts') or []:
        b, v = row['bootstrap'], row['validate']
        boot = b['status']
        if b.get('changed_steps'):
            boot += ' (' + ', '.join(b['changed_steps']) + ')'
        if b.get('failed_steps'):
            boot += ' (' + ', '.join(b['failed_steps']) + ')'
        if 'pass' in v:
            counts = [v['pass'], v['warn'], v['fail']]
            failing = ', '.join(v['failing'])
        else:
            counts = ['', '', '']
            failing = f"validate {v['status']}"
            if v['status'] == 'error':
                failing += f": {v.get('msg', '')}"
        out.append('| ' + ' | '.join(_cell(c) for c in [row['host'], boot] + counts + [failing]) + ' |')
    t = summary.get('totals') or {}

    def counts_of(part):
        return ', '.join(f'{n} {s}' for s, n in (t.get(part) or {}).items()) or 'none'

    out.append('')
    out.append(f"{t.get('hosts', 0)} host(s); bootstrap: {counts_of('bootstrap')}; "
               f"validate: {counts_of('validate')}")
    return '\n'.join(out) + '\n'
