#!/usr/bin/env bash
# Installs what virthost's tests and e2e need on a Debian 12 (bookworm) development or
# CI machine: the libvirt/QEMU stack, iPXE ROMs, D-Bus + polkit, debootstrap and the
# image tools. Idempotent: a second run installs nothing. Needs root.
#
# Why backports: these machines ship qemu-utils 10.0 from bookworm-backports, and the
# plain bookworm qemu-system-x86 (7.2) conflicts with it (see docs/development.md).
set -euo pipefail

if [ "$(id -u)" != 0 ]; then
  echo "install-deps: must run as root (it calls apt-get)" >&2
  exit 1
fi

want=(
  qemu-system-x86 qemu-system-common qemu-utils
  libvirt-daemon-system libvirt-clients libvirt-dev pkg-config
  ipxe-qemu dnsmasq-base iptables iproute2
  dbus polkitd pkexec
  debootstrap dpkg-dev e2fsprogs openssh-client sudo
  nodejs ovmf ipxe
  xorriso grub-pc-bin grub2-common fdisk rpm
  # grub-probe (grub-install) maps a loop partition to its disk with `udevadm info`: without
  # it, "cannot find a GRUB drive for /dev/loop0p1" (docs/e2e.md). Its postinst sees a chroot
  # here and starts no daemon.
  udev
)

missing=()
for p in "${want[@]}"; do
  if ! dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null | grep -qx installed; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#want[@]} packages present"
  exit 0
fi
echo "install-deps: installing ${missing[*]}"

# bookworm-backports, on the same mirror and components as the main entry.
src=/etc/apt/sources.list.d/debian.sources
bp=/etc/apt/sources.list.d/virthost-backports.sources
if [ ! -f "$bp" ]; then
  uri=$(awk '/^URIs:/{print $2; exit}' "$src" 2>/dev/null || true)
  uri=${uri:-http://deb.debian.org/debian}
  comps=$(awk '/^Components:/{sub(/^Components: */,""); print; exit}' "$src" 2>/dev/null || true)
  comps=${comps:-main}
  cat >"$bp.tmp" <<SRC
Types: deb
URIs: $uri
Suites: bookworm-backports
Components: $comps
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  mv "$bp.tmp" "$bp"
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -q
# QEMU from backports so it matches the preinstalled qemu-utils 10.x; the rest from bookworm.
apt-get install -y -q --no-install-recommends -t bookworm-backports \
  qemu-system-x86 qemu-system-common qemu-system-data qemu-utils
apt-get install -y -q --no-install-recommends "${missing[@]}"
echo "install-deps: done"
