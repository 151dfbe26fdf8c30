#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: virthost contributors
# Apache License 2.0 (see galaxy.yml)

# The work is done by the action plugin (plugins/action/validate.py) on the controller; this
# file only documents it. Nothing of it runs on the target.

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: validate
short_description: Prove a libvirt hypervisor is ready with virthost's validate
version_added: 0.1.0
description:
  - Puts the C(validate) binary given by O(binary) on the host at O(remote_path), only when
    its SHA-256 differs from the one already there, runs it with C(--report json) and
    returns its ValidateReport.
  - C(validate) probes every requirement of a virtual bare metal hypervisor (OS, CPU,
    hardware and nested virtualization, packages and iPXE ROMs, capacity for the planned
    VMs, libvirt, the VM user's polkit rights, SSH) and proves the host can iPXE-boot a
    throwaway test domain.
  - The task fails when a check FAILs (O(fail_on)), or with validate's own message when it
    printed no report (exit 2, a usage error). It is V(changed) only when the binary was put
    on the host.
  - C(validate) links C(libvirt.so.0) dynamically, so it runs on a host that
    P(virthost.hypervisor.bootstrap#module) converged (or any host with libvirt). It needs no Python
    on the target. Run it as root (C(become=true)), the boot proof and some checks need it.
  - The playbook C(virthost.hypervisor.fleet_summary) runs it on every host and gathers the
    reports into one fleet summary (JSON and Markdown) on the controller.
options:
  binary:
    description:
      - Path on the controller of the C(validate) binary (C(target/dist/validate) after
        C(cargo xtask dist)); looked up like O(virthost.hypervisor.bootstrap#module:binary).
    type: path
    required: true
  remote_path:
    description:
      - Where the binary is kept on the host; replaced when its SHA-256 differs.
    type: str
    default: /usr/local/libexec/virthost/validate
  nodes:
    description:
      - The planned VMs (C(--nodes)), items C(NAME:COUNT[:VCPUS/MEM_GIB/DISK_GB[+DATA_GB...]]),
        e.g. V([undercloud:1, controller:3, compute:2]); a comma-separated string works too.
        Unset, one VM of the spec's minimum size.
    type: list
    elements: str
  nic:
    description:
      - NIC models whose iPXE ROMs must be present and that the boot proof boots
        (C(--nic)), e.g. V([virtio, e1000]). validate's default is V(virtio).
    type: list
    elements: str
  boot_mode:
    description:
      - Firmware of the boot proof's test domains (C(--boot-mode)), V(bios), V(uefi) or both,
        each booting every O(nic) model; validate's default is both.
      - Passed only when set, so a C(validate) that predates C(--boot-mode) still runs as long
        as this is unset.
    type: list
    elements: str
  allow_emulation:
    description:
      - Missing hardware virtualization WARNs instead of FAILs (C(--allow-emulation));
        guests run under TCG. For CI hosts.
    type: bool
    default: false
  skip_boot:
    description:
      - Skip the iPXE boot proof (C(--skip-boot)). Then O(boot_mode), O(domain_type) and
        O(boot_timeout) must be unset (validate refuses them).
    type: bool
    default: false
  skip_power:
    description:
      - Skip the power proof (C(--skip-power)), the virtualbmc/sushy-tools call sequence as
        O(user) (define, boot device, start, reset, stop, undefine).
    type: bool
    default: false
  domain_type:
    description:
      - The libvirt domain type the boot proof boots (C(--domain-type)), the one the
        deployment will use. Unset, kvm where hardware virtualization works, else qemu.
    type: str
    choices: [kvm, qemu]
  boot_timeout:
    description:
      - Seconds each NIC model's boot may take (C(--boot-timeout), 10-3600; validate's
        default 60). Raise it on slow (TCG, nested, loaded) hosts.
    type: int
  user:
    description:
      - The user that manages libvirt VMs (C(--user)); validate's default is C(stack).
    type: str
  root_keys:
    description:
      - Public keys root's C(authorized_keys) must hold (C(--root-key)), key text or public
        key files on the controller, copied to the task's temporary directory on the host.
    type: list
    elements: str
    default: []
  stack_keys:
    description:
      - Public keys the user's C(authorized_keys) must hold (C(--stack-key)), as in O(root_keys).
    type: list
    elements: str
    default: []
  connect:
    description:
      - The libvirt URI to check and boot on (C(--connect)); validate's default is
        C(qemu:///system).
    type: str
  overcommit:
    description:
      - Memory or disk beyond what is free WARNs instead of FAILs (C(--overcommit)).
    type: bool
    default: false
  fail_on:
    description:
      - When the task fails. V(fail) when a check FAILs, V(warn) when one FAILs or WARNs,
        V(never) only when validate printed no report (the report is returned either way).
    type: str
    choices: [fail, warn, never]
    default: fail
  extra_args:
    description:
      - Further command-line arguments, appended as they are.
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
      - validate only reads the host (its boot proof's network and domain are transient and
        removed), so it runs in check mode too; a binary that differs from the one on the
        host runs from the task's temporary directory and is not kept.
  connection:
    support: full
  delegation:
    support: none
  diff_mode:
    support: partial
    details:
      - Only the binary's SHA-256, when it is replaced.
  platform:
    platforms: posix
notes:
  - The report schema and the check ids are C(docs/validate-report.md) of the virthost repository.
seealso:
  - module: virthost.hypervisor.bootstrap
author:
  - virthost contributors (!UNKNOWN)
'''

EXAMPLES = r'''
- name: Prove the host can run the planned VMs and iPXE-boot them
  virthost.hypervisor.validate:
    binary: "{{ playbook_dir }}/dist/validate"
    nodes: [undercloud:1, controller:3, compute:2]
    nic: [virtio, e1000]
    stack_keys:
      - infrared/id_rsa_undercloud.pub
  become: true
  register: report

- name: A CI host under TCG, keep going on FAILs and look at the report
  virthost.hypervisor.validate:
    binary: dist/validate
    allow_emulation: true
    domain_type: qemu
    boot_timeout: 180
    fail_on: never
  become: true
  register: report

- name: The failing checks
  ansible.builtin.debug:
    var: report.failed_checks
'''

RETURN = r'''
msg:
  description: The counts, and the FAILed (or, with O(fail_on=warn), WARNed) checks with their hints.
  returned: always
  type: str
  sample: "validate: 37 PASS, 1 WARN, 0 FAIL"
rc:
  description: validate's exit code (0 no FAIL, 1 a FAIL, 2 usage error).
  returned: always
  type: int
  sample: 0
checks:
  description: The report's checks (schema and ids in docs/validate-report.md).
  returned: when validate printed a report
  type: list
  elements: dict
  contains:
    id:
      description: The check, e.g. V(kvm.usable), V(libvirt.polkit), V(boot.ipxe.virtio).
      type: str
    status:
      description: V(PASS), V(WARN) or V(FAIL).
      type: str
    detail:
      description: What was found.
      type: str
    hint:
      description: What to do (WARN and FAIL).
      type: str
  sample: [{"id": "os.release", "status": "PASS", "detail": "Debian GNU/Linux 12 (bookworm)", "duration_ms": 0}]
failed_checks:
  description: Ids of the checks that FAILed.
  returned: when validate printed a report
  type: list
  elements: str
  sample: [user.exists]
warned_checks:
  description: Ids of the checks that WARNed.
  returned: when validate printed a report
  type: list
  elements: str
  sample: [cpu.threads]
summary:
  description: Counts of the checks by status.
  returned: when validate printed a report
  type: dict
  sample: {"pass": 37, "warn": 1, "fail": 0}
host:
  description: The facts validate read about the host.
  returned: when validate printed a report
  type: dict
api_version:
  description: The report's C(apiVersion).
  returned: when validate printed a report
  type: str
  sample: virthost.dev/v1
binary:
  description: The binary on the host (as in P(virthost.hypervisor.bootstrap#module)).
  returned: always
  type: dict
cmd:
  description: The command line that ran on the host (without become).
  returned: always
  type: str
stderr:
  description: validate's stderr (the boot proof's progress).
  returned: when not empty
  type: str
stderr_lines:
  description: RV(stderr) split into lines.
  returned: when not empty
  type: list
  elements: str
'''
