# -*- coding: utf-8 -*-
# Copyright: virthost contributors
# Apache License 2.0 (see galaxy.yml)
"""The controller side of virthost.hypervisor.bootstrap and .validate, without I/O.

Everything here is a pure function, so the unit tests run it on reports captured from the
real binaries (tests/unit/plugins/plugin_utils/fixtures/): the command lines the action
plugins run, the shell wrapper that keeps the binary's stderr apart from its JSON report, and
the mapping of (exit code, report, stderr) to Ansible's result (changed, failed, msg, diff).
The report schemas are docs/bootstrap-report.md and docs/validate-report.md of the virthost
repository; unknown fields are ignored, as those documents ask.
"""

from __future__ import annotations

import json
import re
import shlex

API_VERSION = 'virthost.dev/v1'

# Exit codes (virthost README, "Exit codes of bootstrap" / "of validate").
BOOTSTRAP_EXIT = {
    0: 'ok',
    1: 'one or more steps failed',
    2: 'usage error (bad option, user name or key file; nothing was changed)',
    3: 'not root (run the task with become)',
    4: 'check: changes are pending',
    5: 'unsupported OS (set os_family to yum, dnf or apt to try anyway)',
    6: 'another bootstrap held the host lock for all of lock_wait (nothing was changed)',
}
VALIDATE_EXIT = {
    0: 'no check FAILed',
    1: 'at least one check FAILed',
    2: 'usage error (bad option, --nodes, --user or --connect, or a bad key file)',
}
# The shell's own codes when the binary could not run at all.
SHELL_EXIT = {
    126: 'the binary is not executable (noexec mount, wrong architecture?)',
    127: 'the binary was not found',
}

# What bootstrap prints on stderr while another run holds the host lock.
LOCK_WAIT = 'waiting for /run/virthost-bootstrap.lock'

# Separates the binary's stdout (the JSON report) from its stderr in the wrapper's output.
MARKER = '@@virthost-exit '

# An OpenSSH public key line: optional options, a key type, a base64 blob (sshd(8)).
_KEY_LINE = re.compile(
    r'(^|\s)(ssh-(ed25519|rsa|dss)|ecdsa-sha2-nistp(256|384|521)'
    r'|sk-(ssh-ed25519|ecdsa-sha2-nistp256)@openssh\.com)\s+AAAA[0-9A-Za-z+/]')

STDERR_TAIL = 20


def is_key_text(item):
    """True when a root_keys/stack_keys item is key text rather than a file on the controller."""
    return '\n' in item.strip() or bool(_KEY_LINE.search(item))


def join_list(value):
    """A list option (nodes, nic, boot_mode) as the comma-separated value the binaries take."""
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        return ','.join(str(v).strip() for v in value if str(v).strip())
    return str(value)


def bootstrap_argv(binary, params, root_key_files=(), stack_key_files=(), check=False):
    """The bootstrap command line for the task's options (already validated and defaulted)."""
    argv = [binary, '--report', 'json']
    if check:
        argv.append('--check')
    for f in root_key_files:
        argv += ['--root-key', f]
    for f in stack_key_files:
        argv += ['--stack-key', f]
    if params.get('user') is not None:
        argv += ['--user', params['user']]
    if params.get('sudo'):
        argv.append('--sudo')
    if params.get('os_family') is not None:
        argv += ['--os-family', params['os_family']]
    if params.get('lock_wait') is not None:
        argv += ['--lock-wait', str(params['lock_wait'])]
    argv += [str(a) for a in params.get('extra_args') or []]
    return argv


def validate_argv(binary, params, root_key_files=(), stack_key_files=()):
    """The validate command line; each option becomes its flag only when it is set (so a
    validate older than a flag, --boot-mode say, runs as long as the option is unset)."""
    argv = [binary, '--report', 'json']
    for opt, flag in (('connect', '--connect'), ('nodes', '--nodes'), ('nic', '--nic'),
                      ('domain_type', '--domain-type'), ('boot_timeout', '--boot-timeout'),
                      ('boot_mode', '--boot-mode'), ('user', '--user')):
        value = params.get(opt)
        if opt in ('nodes', 'nic', 'boot_mode'):
            value = join_list(value) or None
        if value is not None:
            argv += [flag, str(value)]
    for opt, flag in (('overcommit', '--overcommit'), ('allow_emulation', '--allow-emulation'),
                      ('skip_boot', '--skip-boot'), ('skip_power', '--skip-power')):
        if params.get(opt):
            argv.append(flag)
    for f in root_key_files:
        argv += ['--root-key', f]
    for f in stack_key_files:
        argv += ['--stack-key', f]
    argv += [str(a) for a in params.get('extra_args') or []]
    return argv


def wrap(argv):
    """A POSIX sh script that runs argv with stderr in a temporary file, then prints the
    marker line with the exit code, then that stderr.

    Ansible's ssh connection runs become commands under `ssh -tt`, whose terminal merges
    stderr into stdout; printed one after the other, the JSON report and the stderr lines
    stay apart whatever the connection does.
    """
    cmd = ' '.join(shlex.quote(a) for a in argv)
    return (
        'e=$(mktemp) || exit 125; trap \'rm -f "$e"\' EXIT; '
        f'{cmd} 2>"$e"; rc=$?; printf \'\\n{MARKER}%s\\n\' "$rc"; cat "$e"'
    )


def unwrap(output, rc):
    """(exit code, stdout, stderr) of the binary from the wrapper's output; when the marker
    is missing (the wrapper never ran: become failed, ssh died), the connection's exit code
    and everything as stderr."""
    text = output.replace('\r\n', '\n')
    head, sep, tail = text.partition('\n' + MARKER)
    if not sep:
        if text.startswith(MARKER):
            head, tail = '', text[len(MARKER):]
        else:
            return rc, '', text
    code, dummy, stderr = tail.partition('\n')
    try:
        return int(code.strip()), head, stderr
    except ValueError:
        return rc, '', text


def parse_report(stdout, kind):
    """The report of `kind` in stdout, or None when stdout holds none."""
    if not stdout or not stdout.strip():
        return None
    try:
        report = json.loads(stdout)
    except ValueError:
        return None
    if not isinstance(report, dict) or report.get('kind') != kind:
        return None
    return report


def tail(text, n=STDERR_TAIL):
    """The last n non-empty lines of text, joined with ' | ' (stderr in a one-line msg)."""
    lines = [line.strip() for line in (text or '').splitlines() if line.strip()]
    return ' | '.join(lines[-n:])


def _no_report(binary, rc, stdout, stderr, meanings):
    meaning = meanings.get(rc) or SHELL_EXIT.get(rc)
    why = f'exited {rc}' + (f' ({meaning})' if meaning else '')
    said = tail(stderr) or tail(stdout) or 'no output'
    res = {
        'failed': True,
        'changed': False,
        'rc': rc,
        'msg': f'{binary} {why} and printed no report: {said}',
    }
    if stderr:
        res['stderr'] = stderr
        res['stderr_lines'] = stderr.splitlines()
    return res


def _base(rc, stderr, report):
    res = {'rc': rc, 'changed': False, 'failed': False}
    if stderr:
        res['stderr'] = stderr
        res['stderr_lines'] = stderr.splitlines()
    for key in ('apiVersion', 'host', 'summary'):
        if key in report:
            res['api_version' if key == 'apiVersion' else key] = report[key]
    return res


def _step_line(step):
    return f"{step.get('id', '?')}: {step.get('detail', '')}"


def bootstrap_result(rc, stdout, stderr, check_mode=False):
    """Ansible's result for one bootstrap run.

    changed: a step changed (apply) or has changes pending (check mode; exit 4 is not a
    failure there). failed: a step failed, or no report (exits 2, 3, 5, 6 and a binary that
    did not run), with the failed steps' details or bootstrap's stderr as msg.
    """
    report = parse_report(stdout, 'BootstrapReport')
    if report is None:
        return _no_report('bootstrap', rc, stdout, stderr, BOOTSTRAP_EXIT)
    res = _base(rc, stderr, report)
    steps = report.get('steps') or []
    res['mode'] = report.get('mode')
    res['steps'] = steps
    changed = [s for s in steps if s.get('status') == 'changed']
    failed = [s for s in steps if s.get('status') == 'failed']
    res['waited_for_lock'] = LOCK_WAIT in (stderr or '')
    res['changed_steps'] = [s.get('id') for s in changed]
    res['failed_steps'] = [s.get('id') for s in failed]
    res['changed'] = bool(changed)
    verb = 'would change' if check_mode else 'changed'
    if failed:
        res['failed'] = True
        res['msg'] = f'bootstrap: {len(failed)} step(s) failed: ' + '; '.join(map(_step_line, failed))
    elif rc not in (0, 4) or (rc == 4 and not check_mode):
        res['failed'] = True
        res['msg'] = (f'bootstrap exited {rc} ({BOOTSTRAP_EXIT.get(rc, "unexpected")}) '
                      f'with no failed step: {tail(stderr) or "no stderr"}')
    elif check_mode and report.get('mode') != 'check':
        res['failed'] = True
        res['msg'] = f"bootstrap ran in mode {report.get('mode')!r}, not 'check', in check mode"
    elif changed:
        res['msg'] = f'bootstrap {verb} {len(changed)} step(s): ' + ', '.join(res['changed_steps'])
    else:
        res['msg'] = f'bootstrap: all {len(steps)} steps ok, nothing to change'
    return res


def bootstrap_diff(report_steps):
    """One diff per changed step: its changes as added lines (what changed, or in check mode
    what would)."""
    out = []
    for s in report_steps:
        if s.get('status') != 'changed':
            continue
        changes = s.get('changes') or [s.get('detail', 'changed')]
        out.append({
            'before_header': s.get('id', '?'),
            'after_header': s.get('id', '?'),
            'before': '',
            'after': ''.join(f'{c}\n' for c in changes),
        })
    return out


def binary_diff(remote_path, before_sha, after_sha):
    return {
        'before_header': remote_path,
        'after_header': remote_path,
        'before': f'sha256 {before_sha}\n' if before_sha else '',
        'after': f'sha256 {after_sha}\n',
    }


def _check_line(check):
    hint = check.get('hint')
    return f"{check.get('id', '?')}: {check.get('detail', '')}" + (f' ({hint})' if hint else '')


def validate_result(rc, stdout, stderr, fail_on='fail'):
    """Ansible's result for one validate run.

    Never changed by itself. failed: fail_on 'fail' (default) when a check FAILed, 'warn'
    when one FAILed or WARNed, 'never' only when there is no report (exit 2 or a binary that
    did not run).
    """
    report = parse_report(stdout, 'ValidateReport')
    if report is None:
        return _no_report('validate', rc, stdout, stderr, VALIDATE_EXIT)
    res = _base(rc, stderr, report)
    checks = report.get('checks') or []
    res['checks'] = checks
    fails = [c for c in checks if c.get('status') == 'FAIL']
    warns = [c for c in checks if c.get('status') == 'WARN']
    res['failed_checks'] = [c.get('id') for c in fails]
    res['warned_checks'] = [c.get('id') for c in warns]
    counts = report.get('summary') or {}
    line = (f"validate: {counts.get('pass', '?')} PASS, {counts.get('warn', '?')} WARN, "
            f"{counts.get('fail', '?')} FAIL")
    if rc not in (0, 1):
        res['failed'] = True
        res['msg'] = f'validate exited {rc} (unexpected) after a report: {line}'
    elif fail_on != 'never' and fails:
        res['failed'] = True
        res['msg'] = f'{line}: ' + '; '.join(map(_check_line, fails))
    elif fail_on == 'warn' and warns:
        res['failed'] = True
        res['msg'] = f'{line} (fail_on=warn): ' + '; '.join(map(_check_line, warns))
    elif rc == 1 and not fails and fail_on != 'never':
        res['failed'] = True
        res['msg'] = f'{line}, but validate exited 1: {tail(stderr) or "no stderr"}'
    else:
        res['msg'] = line
    return res
