# -*- coding: utf-8 -*-
# Copyright: virthost contributors
# Apache License 2.0 (see galaxy.yml)
"""What the bootstrap and validate action plugins share: put a static binary on the target
(only when its SHA-256 differs), hand it key files through the task's remote temporary
directory, run it, and map its JSON report to the task's result.

No Python runs on the target: only the connection's exec_command (`sha256sum`, `cp`/`mv`,
the binary) and put_file. Commands that touch the host go through become as the play sets it.
"""

from __future__ import annotations

import hashlib
import os
import shlex

from ansible.errors import AnsibleActionFail
from ansible.module_utils.common.text.converters import to_bytes
from ansible.plugins.action import ActionBase

from ansible_collections.virthost.hypervisor.plugins.plugin_utils import report

KEY_OPTIONS = {
    'root_keys': {'type': 'list', 'elements': 'str', 'default': [], 'no_log': False},
    'stack_keys': {'type': 'list', 'elements': 'str', 'default': [], 'no_log': False},
}

_SHA_CACHE = {}


def local_sha256(path):
    """SHA-256 of a controller file, cached by (path, size, mtime) for the whole run."""
    st = os.stat(path)
    key = (path, st.st_size, st.st_mtime_ns)
    if key not in _SHA_CACHE:
        h = hashlib.sha256()
        with open(path, 'rb') as f:
            for chunk in iter(lambda: f.read(1 << 20), b''):
                h.update(chunk)
        _SHA_CACHE[key] = h.hexdigest()
    return _SHA_CACHE[key]


class BinaryAction(ActionBase):
    """Subclasses set NAME, ARGUMENT_SPEC and define argv() and result_of()."""

    TRANSFERS_FILES = True
    _supports_check_mode = True
    _supports_async = False

    NAME = ''
    ARGUMENT_SPEC = {}

    def argv(self, path, params, root_files, stack_files, check):
        raise NotImplementedError

    def result_of(self, rc, stdout, stderr, params, check):
        raise NotImplementedError

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        dummy, params = self.validate_argument_spec(argument_spec=self.ARGUMENT_SPEC)
        check = bool(self._task.check_mode)

        local = self._controller_file(params['binary'], 'binary')
        sha = local_sha256(local)
        remote = params['remote_path']
        before = self._remote_sha256(remote)
        copy = before != sha
        run_path = remote
        if copy:
            staged = self._connection._shell.join_path(self._tmpdir(), self.NAME)
            self._transfer_file(local, staged)
            self._fixup_perms2([staged])
            if check:
                # Check mode changes nothing: the new binary runs from the temporary directory.
                run_path = staged
            else:
                self._install(staged, remote)

        root_files = self._upload_keys(params['root_keys'], 'root-key')
        stack_files = self._upload_keys(params['stack_keys'], 'stack-key')
        argv = self.argv(run_path, params, root_files, stack_files, check)
        raw = self._low_level_execute_command(report.wrap(argv), sudoable=True)
        rc, stdout, stderr = report.unwrap(raw.get('stdout', ''), raw.get('rc'))
        if report.MARKER not in raw.get('stdout', ''):
            # The wrapper never ran (become or the connection failed): the connection's
            # stderr says why. Otherwise it holds only ssh's own chatter.
            stderr += raw.get('stderr', '')

        result.update(self.result_of(rc, stdout, stderr, params, check))
        result['cmd'] = ' '.join(shlex.quote(a) for a in argv)
        result['binary'] = {'path': remote, 'sha256': sha, 'previous_sha256': before, 'changed': copy}
        diff = []
        if copy:
            result['changed'] = True
            verb = 'would be put' if check else 'put'
            result['msg'] = f"{self.NAME} {verb} at {remote}; {result.get('msg', '')}"
            diff.append(report.binary_diff(remote, before, sha))
        if self._task.diff:
            diff += self.diff_of(result)
            result['diff'] = diff
        return result

    def diff_of(self, result):
        return []

    def _controller_file(self, name, what):
        try:
            return self._find_needle('files', name)
        except Exception as e:
            raise AnsibleActionFail(f'{what} {name!r}: not found on the controller: {e}')

    def _tmpdir(self):
        return self._connection._shell.tmpdir or self._make_tmp_path()

    def _exec(self, cmd, what):
        res = self._low_level_execute_command(cmd, sudoable=True)
        if res.get('rc') != 0:
            out = report.tail(res.get('stdout', '') + '\n' + res.get('stderr', ''))
            raise AnsibleActionFail(f"{what} failed (exit {res.get('rc')}): {out}")
        return res

    def _remote_sha256(self, path):
        q = shlex.quote(path)
        res = self._low_level_execute_command(f'sha256sum -- {q} 2>/dev/null || true', sudoable=True)
        words = res.get('stdout', '').split()
        if words and len(words[0]) == 64 and all(c in '0123456789abcdef' for c in words[0]):
            return words[0]
        return None

    def _install(self, staged, remote):
        """Copies the staged binary into place: a file beside it, chmod 0755, then rename, so
        a run that started the old binary keeps it and concurrent copies cannot mix."""
        src, dst = shlex.quote(staged), shlex.quote(remote)
        self._exec(
            'set -e; umask 022; '
            f'mkdir -p -- "$(dirname -- {dst})"; t={dst}.new.$$; trap \'rm -f -- "$t"\' EXIT; '
            f'cp -- {src} "$t"; chmod 0755 -- "$t"; mv -f -- "$t" {dst}',
            f'installing {self.NAME} at {remote}')

    def _upload_keys(self, items, label):
        """Each item (key text, or a public key file on the controller) as a file in the
        task's remote temporary directory; returns the remote paths."""
        files = []
        for i, item in enumerate(items or [], 1):
            remote = self._connection._shell.join_path(self._tmpdir(), f'{label}-{i}.pub')
            if report.is_key_text(item):
                self._transfer_data(remote, to_bytes(item.strip() + '\n'))
            else:
                self._transfer_file(self._controller_file(item, label), remote)
            files.append(remote)
        if files:
            self._fixup_perms2(files, execute=False)
        return files
