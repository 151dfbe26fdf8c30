# -*- coding: utf-8 -*-
# Copyright: virthost contributors
# Apache License 2.0 (see galaxy.yml)
"""The report-to-result mapping, on reports and stderr captured from the real binaries
(fixtures/README.md says how each was made)."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import tempfile

import pytest

from ansible_collections.virthost.hypervisor.plugins.plugin_utils import report

FIXTURES = os.path.join(os.path.dirname(__file__), 'fixtures')


def fixture(name):
    with open(os.path.join(FIXTURES, name), encoding='utf-8') as f:
        return f.read()


# (stdout fixture or None, stderr fixture or None, exit code, check mode,
#  changed, failed, changed_steps, words the msg must contain)
BOOTSTRAP_CASES = [
    ('bootstrap-check-fresh-debian12.json', None, 4, True,
     True, False, ['packages', 'devkvm', 'user', 'polkit', 'pool'], ['would change 5 step(s)']),
    # exit 4 outside check mode cannot happen; if it does, it is not a silent success
    ('bootstrap-check-fresh-debian12.json', None, 4, False,
     True, True, ['packages', 'devkvm', 'user', 'polkit', 'pool'], ['exited 4']),
    ('bootstrap-apply-first-vm.json', None, 0, False,
     True, False, None, ['changed']),
    ('bootstrap-apply-noop-vm.json', None, 0, False,
     False, False, [], ['all 10 steps ok, nothing to change']),
    # the second of two runs at once waited for the first's host lock, then had nothing to do
    ('bootstrap-apply-noop-waited-vm.json', 'bootstrap-apply-noop-waited-vm.stderr', 0, False,
     False, False, [], ['nothing to change']),
    ('bootstrap-check-converged-vm.json', None, 0, True,
     False, False, [], ['nothing to change']),
    ('bootstrap-apply-pool-failed-vm.json', None, 1, False,
     False, True, [], ['1 step(s) failed', 'pool:', 'pool-define-as']),
    # a report in apply mode while Ansible is in check mode: the binary ignored --check
    ('bootstrap-apply-noop-vm.json', None, 0, True,
     False, True, [], ["not 'check'"]),
    (None, 'bootstrap-usage-user-root.stderr', 2, False,
     False, True, None, ['exited 2 (usage error', 'the VM user cannot be root']),
    (None, 'bootstrap-usage-bad-key.stderr', 2, True,
     False, True, None, ['not an OpenSSH public key']),
    (None, 'bootstrap-not-root.stderr', 3, False,
     False, True, None, ['exited 3 (not root', 'must run as root']),
    (None, 'bootstrap-unsupported-os.stderr', 5, True,
     False, True, None, ['exited 5 (unsupported OS', 'Alpine Linux v3.20']),
    (None, 'bootstrap-lock-held.stderr', 6, False,
     False, True, None, ['exited 6 (another bootstrap', 'still after 1 s', 'waiting for']),
]


@pytest.mark.parametrize('stdout,stderr,rc,check,changed,failed,steps,words', BOOTSTRAP_CASES)
def test_bootstrap_result(stdout, stderr, rc, check, changed, failed, steps, words):
    res = report.bootstrap_result(rc, fixture(stdout) if stdout else '',
                                  fixture(stderr) if stderr else '', check)
    assert res['changed'] is changed, res['msg']
    assert res['failed'] is failed, res['msg']
    assert res['rc'] == rc
    for w in words:
        assert w in res['msg']
    if steps is not None:
        assert res['changed_steps'] == steps
    if stdout:
        rep = json.loads(fixture(stdout))
        assert res['steps'] == rep['steps']
        assert res['summary'] == rep['summary']
        assert res['mode'] == rep['mode']
        assert res['failed_steps'] == [s['id'] for s in rep['steps'] if s['status'] == 'failed']
    else:
        assert 'steps' not in res
    if stderr:
        assert res['stderr'] == fixture(stderr)
    if stdout:
        assert res['waited_for_lock'] is (stderr == 'bootstrap-apply-noop-waited-vm.stderr')


def test_a_binary_that_did_not_run():
    res = report.bootstrap_result(127, '', 'sh: 1: /usr/local/libexec/virthost/bootstrap: not found\n')
    assert res['failed'] and 'the binary was not found' in res['msg']
    res = report.validate_result(126, '', '')
    assert res['failed'] and 'not executable' in res['msg'] and 'no output' in res['msg']


def test_a_report_of_the_wrong_kind_is_no_report():
    res = report.bootstrap_result(0, fixture('validate-pass-vm.json'), '')
    assert res['failed'] and 'printed no report' in res['msg']
    res = report.bootstrap_result(0, '{"kind": "BootstrapReport", ', '')
    assert res['failed']


def test_bootstrap_diff_is_the_planned_changes_per_step():
    rep = json.loads(fixture('bootstrap-check-fresh-debian12.json'))
    diff = report.bootstrap_diff(rep['steps'])
    assert [d['before_header'] for d in diff] == ['packages', 'devkvm', 'user', 'polkit', 'pool']
    pool = diff[-1]
    assert pool['before'] == ''
    assert pool['after'] == ('virsh pool-define-as default dir --target /var/lib/libvirt/images\n'
                             'virsh pool-start default\nvirsh pool-autostart default\n')
    noop = json.loads(fixture('bootstrap-apply-noop-vm.json'))
    assert report.bootstrap_diff(noop['steps']) == []


# (stdout fixture or None, stderr fixture or None, exit code, fail_on, failed, words)
VALIDATE_CASES = [
    ('validate-pass-vm.json', None, 0, 'fail', False, ['PASS', '0 FAIL']),
    ('validate-pass-vm.json', None, 0, 'warn', True, ['fail_on=warn', 'cpu.threads']),
    ('validate-fails-unbootstrapped.json', None, 1, 'fail', True,
     ['6 FAIL', 'user.exists: no user stack in /etc/passwd', 'ssh.sshd']),
    ('validate-fails-unbootstrapped.json', None, 1, 'never', False, ['6 FAIL']),
    (None, 'validate-usage-nodes.stderr', 2, 'never', True,
     ['exited 2 (usage error', "a count of 0 plans no 'compute' VM"]),
]


@pytest.mark.parametrize('stdout,stderr,rc,fail_on,failed,words', VALIDATE_CASES)
def test_validate_result(stdout, stderr, rc, fail_on, failed, words):
    res = report.validate_result(rc, fixture(stdout) if stdout else '',
                                 fixture(stderr) if stderr else '', fail_on)
    assert res['failed'] is failed, res['msg']
    assert res['changed'] is False
    for w in words:
        assert w in res['msg']
    if stdout:
        rep = json.loads(fixture(stdout))
        assert res['checks'] == rep['checks']
        assert res['summary'] == rep['summary']
        assert res['failed_checks'] == [c['id'] for c in rep['checks'] if c['status'] == 'FAIL']
        assert len(res['warned_checks']) == rep['summary']['warn']


def test_bootstrap_argv():
    params = {'user': 'ironic', 'sudo': True, 'os_family': 'dnf', 'lock_wait': 60,
              'extra_args': ['--future-flag']}
    assert report.bootstrap_argv('/b', params, ['/t/root-key-1.pub'], ['/t/s1', '/t/s2'], check=True) == [
        '/b', '--report', 'json', '--check', '--root-key', '/t/root-key-1.pub',
        '--stack-key', '/t/s1', '--stack-key', '/t/s2', '--user', 'ironic', '--sudo',
        '--os-family', 'dnf', '--lock-wait', '60', '--future-flag']
    assert report.bootstrap_argv('/b', {'sudo': False}) == ['/b', '--report', 'json']


def test_validate_argv_passes_boot_mode_only_when_set():
    params = {'nodes': ['undercloud:1', 'controller:3'], 'nic': 'virtio,e1000',
              'allow_emulation': True, 'skip_boot': False, 'domain_type': 'qemu',
              'boot_timeout': 180, 'user': 'stack', 'connect': 'qemu:///system',
              'overcommit': True, 'boot_mode': None}
    argv = report.validate_argv('/v', params, ['/t/r'], ['/t/s'])
    assert argv == ['/v', '--report', 'json', '--connect', 'qemu:///system',
                    '--nodes', 'undercloud:1,controller:3', '--nic', 'virtio,e1000',
                    '--domain-type', 'qemu', '--boot-timeout', '180', '--user', 'stack',
                    '--overcommit', '--allow-emulation', '--root-key', '/t/r', '--stack-key', '/t/s']
    assert '--boot-mode' not in argv
    argv = report.validate_argv('/v', {'boot_mode': ['bios', 'uefi'], 'skip_power': True, 'nodes': []})
    assert argv == ['/v', '--report', 'json', '--boot-mode', 'bios,uefi', '--skip-power']
    argv = report.validate_argv('/v', {'boot_mode': [], 'skip_boot': True})
    assert argv == ['/v', '--report', 'json', '--skip-boot']


def test_key_text_or_controller_file():
    key = fixture('stack.pub').strip()
    assert report.is_key_text(key)
    assert report.is_key_text('from="10.0.0.0/8" ' + key)
    assert report.is_key_text(key + '\n' + key)
    for path in ('~/.ssh/id_ed25519.pub', 'files/id_rsa.pub', '/etc/virthost/keys/ssh-rsa.pub'):
        assert not report.is_key_text(path)


def fake_binary(directory, code, out, err):
    path = os.path.join(directory, 'fake')
    with open(path, 'w', encoding='utf-8') as f:
        f.write('#!/bin/sh\n')
        f.write(f"printf '%s' '{out}'\n")
        f.write(f"printf '%s' '{err}' >&2\n")
        f.write(f'exit {code}\n')
    os.chmod(path, 0o755)
    return path


def run_on_a_terminal(script):
    """What `ssh -tt` gives Ansible: stdout and stderr merged by a terminal, \\n as \\r\\n."""
    pid, fd = pty.fork()
    if pid == 0:
        os.execv('/bin/sh', ['/bin/sh', '-c', script])
    chunks = []
    while True:
        try:
            data = os.read(fd, 4096)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    code = os.waitpid(pid, 0)[1] >> 8
    return code, b''.join(chunks).decode()


@pytest.mark.parametrize('terminal', [False, True])
def test_the_wrapper_keeps_the_report_apart_from_stderr(terminal):
    rep = fixture('bootstrap-apply-noop-vm.json').replace("'", '')
    with tempfile.TemporaryDirectory() as d:
        for code, out, err in ((0, rep, 'bootstrap: note\nprogress\r100%\n'), (6, '', 'held\n'), (1, rep, '')):
            script = report.wrap([fake_binary(d, code, out, err), '--report', 'json'])
            if terminal:
                dummy, output = run_on_a_terminal(script)
            else:
                output = subprocess.run(['/bin/sh', '-c', script], capture_output=True,
                                        check=False).stdout.decode()
            rc, stdout, stderr = report.unwrap(output, 255)
            assert rc == code
            assert stdout.strip() == out.strip()
            if out:
                assert json.loads(stdout) == json.loads(out)
            assert stderr == err


def test_no_marker_means_the_wrapper_never_ran():
    assert report.unwrap('sudo: a password is required\r\n', 1) == (1, '', 'sudo: a password is required\n')
