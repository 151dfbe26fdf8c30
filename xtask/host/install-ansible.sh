#!/usr/bin/env bash
# Installs what the Ansible collection (ansible/ansible_collections/virthost/hypervisor,
# docs/ansible.md) needs for its tests and for e2e's plays, from PyPI:
#  - target/ansible-venv: a virtual environment with a pinned ansible-core and pytest;
#  - the virtual environments `ansible-test sanity` runs its tests in. ansible-test makes
#    those itself (under ~/.ansible/test/venv/, from its own pinned requirement files); it
#    bootstraps pip in each with a get-pip.py it downloads from a host these machines cannot
#    reach, so this script first puts a stand-in at the path ansible-test caches it under,
#    one that takes pip from the interpreter's own ensurepip and PyPI.
# Idempotent: a second run installs nothing. Root not required.
set -euo pipefail

# ansible-core 2.18 runs on Python 3.11-3.13 (Debian 12's python3 is 3.11).
ANSIBLE_CORE=2.18.19
PYTEST=8.4.2

root=$(cd "$(dirname "$0")/../.." && pwd)
venv=${VIRTHOST_ANSIBLE_VENV:-$root/target/ansible-venv}
python=${PYTHON:-python3}
want="ansible-core==$ANSIBLE_CORE pytest==$PYTEST"
stamp=$venv/.virthost-installed

if [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
  echo "install-ansible: $want present in $venv"
else
  ver=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
  case $ver in
    3.11 | 3.12 | 3.13) ;;
    *)
      echo "install-ansible: $python is Python $ver; ansible-core $ANSIBLE_CORE needs 3.11-3.13 (set PYTHON=...)" >&2
      exit 1
      ;;
  esac
  echo "install-ansible: installing $want into $venv (Python $ver)"
  [ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
  # shellcheck disable=SC2086 # $want is two requirement words
  "$venv/bin/python" -m pip install -q --disable-pip-version-check $want
  echo "$want" >"$stamp"
fi

# The pip version ansible-test bootstraps into its virtual environments, and the stand-in
# for its get-pip.py.
pip_ver=$("$venv/bin/python" - <<'PY'
import re, ansible_test, os
src = open(os.path.join(os.path.dirname(ansible_test.__file__), '_internal', 'python_requirements.py')).read()
print(re.search(r"pip='([0-9.]+)'", src).group(1))
PY
)
get_pip=$HOME/.ansible/test/cache/get_pip_${pip_ver//./_}.py
if [ ! -f "$get_pip" ]; then
  mkdir -p "$(dirname "$get_pip")"
  cat >"$get_pip.tmp" <<'PY'
"""Stand-in for get-pip.py (written by virthost's xtask/host/install-ansible.sh): ansible-test
downloads the real one from a host these machines cannot reach. Installs pip with the
interpreter's own ensurepip, then the requested pip from PyPI."""
import subprocess
import sys

args = sys.argv[1:]
subprocess.check_call([sys.executable, '-m', 'ensurepip', '--default-pip'], stdout=subprocess.DEVNULL)
subprocess.check_call([sys.executable, '-m', 'pip', 'install', '-q']
                      + [a for a in args if a not in ('--no-setuptools', '--no-wheel')])
if '--no-setuptools' in args:
    subprocess.call([sys.executable, '-m', 'pip', 'uninstall', '-q', '-y', 'setuptools'])
PY
  mv "$get_pip.tmp" "$get_pip"
  echo "install-ansible: wrote $get_pip"
fi

# Each sanity test's virtual environment, made once (ansible-test keeps a marker in each) and
# reused; --prime-venvs runs no test. ansible-test must run inside ansible_collections/NS/NAME.
pyver=$("$venv/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
cd "$root/ansible/ansible_collections/virthost/hypervisor"
out=$("$venv/bin/ansible-test" sanity --prime-venvs --python "$pyver" 2>&1) || {
  echo "$out" >&2
  echo "install-ansible: ansible-test sanity --prime-venvs failed" >&2
  exit 1
}
made=$(grep -c '^Installing requirements' <<<"$out" || true)
echo "install-ansible: ansible-test sanity environments ready for Python $pyver ($made made now)"
