# -*- coding: utf-8 -*-
# Copyright: virthost contributors
# Apache License 2.0 (see galaxy.yml)
"""virthost.hypervisor.validate: documentation in plugins/modules/validate.py."""

from __future__ import annotations

from ansible_collections.virthost.hypervisor.plugins.plugin_utils import report
from ansible_collections.virthost.hypervisor.plugins.plugin_utils.binary_action import (
    KEY_OPTIONS,
    BinaryAction,
)


class ActionModule(BinaryAction):

    NAME = 'validate'
    ARGUMENT_SPEC = dict(
        binary={'type': 'path', 'required': True},
        remote_path={'type': 'str', 'default': '/usr/local/libexec/virthost/validate'},
        nodes={'type': 'list', 'elements': 'str'},
        nic={'type': 'list', 'elements': 'str'},
        boot_mode={'type': 'list', 'elements': 'str'},
        allow_emulation={'type': 'bool', 'default': False},
        skip_boot={'type': 'bool', 'default': False},
        skip_power={'type': 'bool', 'default': False},
        domain_type={'type': 'str', 'choices': ['kvm', 'qemu']},
        boot_timeout={'type': 'int'},
        user={'type': 'str'},
        connect={'type': 'str'},
        overcommit={'type': 'bool', 'default': False},
        fail_on={'type': 'str', 'choices': ['fail', 'warn', 'never'], 'default': 'fail'},
        extra_args={'type': 'list', 'elements': 'str', 'default': []},
        **KEY_OPTIONS
    )

    def argv(self, path, params, root_files, stack_files, check):
        return report.validate_argv(path, params, root_files, stack_files)

    def result_of(self, rc, stdout, stderr, params, check):
        return report.validate_result(rc, stdout, stderr, params['fail_on'])
