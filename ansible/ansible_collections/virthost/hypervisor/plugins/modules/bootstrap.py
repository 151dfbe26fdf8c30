#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: virthost contributors
# Apache License 2.0 (see galaxy.yml)

# The work is done by the action plugin (plugins/action/bootstrap.py) on the controller; this
# file only documents it. Nothing of it runs on the target.

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: bootstrap
short_description: Converge a host into a libvirt hypervisor with virthost's bootstrap
version_added: 0.1.0
description:
  - Puts the static C(bootstrap) binary given by O(binary) on the host at O(remote_path),
    only when its SHA-256 differs from the one already there, runs it with
    C(--report json) and maps its BootstrapReport to the task's result.
  - C(bootstrap) installs the hypervisor packages through the host's own package manager,
    recent iPXE ROMs, nested KVM, a usable C(/dev/kvm), the VM user with polkit rights to
    libvirt, SSH keys, a running libvirt and the storage pool C(default). It is idempotent;
    a second run changes nothing.
  - The task is V(changed) when any step changed (or, in check mode, has changes pending) or
    when the binary was put on the host. It fails with the failed steps' details, or with
    bootstrap's own message when it printed no report (exit 2 usage error, 3 not root,
    5 unsupported OS, 6 host lock held for all of O(lock_wait)).
  - Needs no Python on the target (RHEL 7 hosts with only Python 2 included); the target
    needs C(/bin/sh), C(sha256sum), C(mktemp), C(cp) and C(mv).
  - C(bootstrap) must run as root, so use C(become=true) unless the connection user is
    root. Concurrent runs on one host are safe, they wait for bootstrap's host lock.
options:
  binary:
    description:
      - Path on the controller of the static C(bootstrap) binary (C(cargo xtask dist) builds
        C(target/dist/bootstrap)). A relative path is looked up like the P(ansible.builtin.copy#module)
        module's O(ansible.builtin.copy#module:src) (a role's or the playbook's C(files/)).
    type: path
    required: true
  remote_path:
    description:
      - Where the binary is kept on the host. Replaced (a new file renamed over it) when its
        SHA-256 differs from O(binary)'s.
    type: str
    default: /usr/local/libexec/virthost/bootstrap
  root_keys:
    description:
      - OpenSSH public keys to add to root's C(authorized_keys) (C(--root-key)). Each item is
        either the key text (one or more lines of C(type base64 [comment])) or the path of a
        public key file on the controller. They are copied to the task's temporary directory
        on the host and removed with it.
      - Pass a list; a single string is split at commas.
    type: list
    elements: str
    default: []
  stack_keys:
    description:
      - OpenSSH public keys to add to the VM user's C(authorized_keys) (C(--stack-key)), as
        in O(root_keys).
    type: list
    elements: str
    default: []
  user:
    description:
      - The user that manages libvirt VMs (C(--user)). bootstrap's default is C(stack).
    type: str
  sudo:
    description:
      - Give that user passwordless sudo (C(--sudo), a file in C(/etc/sudoers.d/)).
    type: bool
    default: false
  os_family:
    description:
      - The package-manager family (C(--os-family)). Anything but V(auto) drives an
        unsupported OS, best effort. Unset, bootstrap detects it and refuses an unsupported OS.
    type: str
    choices: [auto, yum, dnf, apt]
  lock_wait:
    description:
      - Seconds to wait while another bootstrap holds the host's lock (C(--lock-wait),
        0-86400; bootstrap's default 900). Then the task fails, having changed nothing.
    type: int
  extra_args:
    description:
      - Further command-line arguments, appended as they are (for flags newer than this
        collection).
    type: list
    elements: str
    default: []
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.conn
  - ansible.builtin.action_common_attributes.flow
attributes:
  action:
    support: full
  async:
    support: none
  become:
    support: full
  bypass_host_loop:
    support: none
  check_mode:
    support: full
    details:
      - Runs C(bootstrap --check), which reads everything and changes nothing; the task is
        V(changed) when changes are pending (bootstrap's exit code 4). A binary that differs
        from the one on the host runs from the task's temporary directory and is not kept.
  connection:
    support: full
  delegation:
    support: none
  diff_mode:
    support: full
    details:
      - One diff per changed step, its changes (what changed, or in check mode what would) as
        added lines; and the binary's SHA-256 when it is replaced.
  platform:
    platforms: posix
    details: Linux hosts that bootstrap supports (RHEL/CentOS/Rocky/Alma 7-9, Fedora, Debian, Ubuntu).
notes:
  - The report schema is C(docs/bootstrap-report.md) of the virthost repository.
  - The playbook C(virthost.hypervisor.site) bootstraps and validates every host of an inventory group.
seealso:
  - module: virthost.hypervisor.validate
author:
  - virthost contributors (!UNKNOWN)
'''

EXAMPLES = r'''
- name: Converge the hypervisor
  virthost.hypervisor.bootstrap:
    binary: "{{ playbook_dir }}/dist/bootstrap"
    root_keys:
      - ~/.ssh/id_ed25519.pub
    stack_keys:
      - "{{ lookup('ansible.builtin.file', 'infrared/id_rsa_undercloud.pub') }}"
  become: true

- name: What would change (run with --check --diff to see each step's changes)
  virthost.hypervisor.bootstrap:
    binary: dist/bootstrap
  check_mode: true
  register: plan

- name: An unsupported distribution, best effort
  virthost.hypervisor.bootstrap:
    binary: dist/bootstrap
    os_family: dnf
    user: ironic
    sudo: true
    lock_wait: 60
'''

RETURN = r'''
msg:
  description: What happened, in one line; on failure the failed steps' details or bootstrap's stderr.
  returned: always
  type: str
  sample: "bootstrap: all 11 steps ok, nothing to change"
rc:
  description: bootstrap's exit code (0 ok, 1 a step failed, 2 usage, 3 not root, 4 check with pending changes, 5 unsupported OS, 6 lock held).
  returned: always
  type: int
  sample: 0
mode:
  description: V(apply), or V(check) in check mode.
  returned: when bootstrap printed a report
  type: str
  sample: apply
steps:
  description: The report's steps, in the order they ran (schema in docs/bootstrap-report.md).
  returned: when bootstrap printed a report
  type: list
  elements: dict
  contains:
    id:
      description: The step, e.g. V(packages), V(ipxe), V(kvm), V(devkvm), V(user), V(polkit), V(sudo), V(root-keys), V(user-keys), V(libvirt), V(pool).
      type: str
    status:
      description: V(ok), V(changed), V(failed) or V(skipped).
      type: str
    detail:
      description: The state reached, the reason for a skip, or the error.
      type: str
    changes:
      description: What was changed (apply) or would be (check).
      type: list
      elements: str
    duration_ms:
      description: Wall time of the step.
      type: int
  sample:
    - id: pool
      status: ok
      detail: "storage pool 'default': dir at /var/lib/libvirt/images, running, autostart"
      changes: []
      duration_ms: 85
changed_steps:
  description: Ids of the steps that changed (or would).
  returned: when bootstrap printed a report
  type: list
  elements: str
  sample: [packages, user]
failed_steps:
  description: Ids of the steps that failed.
  returned: when bootstrap printed a report
  type: list
  elements: str
  sample: []
waited_for_lock:
  description: Whether this run waited for another bootstrap's host lock (concurrent runs on one host).
  returned: when bootstrap printed a report
  type: bool
  sample: false
summary:
  description: Counts of the steps by status.
  returned: when bootstrap printed a report
  type: dict
  sample: {"ok": 11, "changed": 0, "failed": 0, "skipped": 0}
host:
  description: The facts bootstrap read before it changed anything (platform, CPU, installed packages, ...).
  returned: when bootstrap printed a report
  type: dict
api_version:
  description: The report's C(apiVersion).
  returned: when bootstrap printed a report
  type: str
  sample: virthost.dev/v1
binary:
  description: The binary on the host.
  returned: always
  type: dict
  contains:
    path:
      description: O(remote_path).
      type: str
    sha256:
      description: SHA-256 of O(binary).
      type: str
    previous_sha256:
      description: SHA-256 of the file that was at O(remote_path), null when there was none.
      type: str
    changed:
      description: Whether the binary was put on the host (in check mode, would be).
      type: bool
cmd:
  description: The command line that ran on the host (without become).
  returned: always
  type: str
  sample: /usr/local/libexec/virthost/bootstrap --report json --root-key /root/.ansible/tmp/ansible-tmp-1/root-key-1.pub
stderr:
  description: bootstrap's stderr (warnings, lock waits, errors).
  returned: when not empty
  type: str
stderr_lines:
  description: RV(stderr) split into lines.
  returned: when not empty
  type: list
  elements: str
'''
