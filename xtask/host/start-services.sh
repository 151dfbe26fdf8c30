#!/usr/bin/env bash
# Starts what virthost's real-system tests talk to, on a machine without systemd as PID 1
# (development and CI machines): the D-Bus system bus, polkitd, virtlogd, and libvirtd
# inside network namespace "virthost-test", so bridges, dnsmasq and test guests live
# there and nothing reaches any outside network. The libvirt socket is on the filesystem,
# so clients outside the namespace reach that daemon. Idempotent; needs root.
set -euo pipefail
NS=virthost-test

if [ "$(id -u)" != 0 ]; then
  echo "start-services: must run as root" >&2
  exit 1
fi

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# /dev/kvm as a real host's udev rule leaves it (ENVIRONMENT.md: root:root 0600 makes libvirt
# re-probe QEMU on every call).
if [ -e /dev/kvm ]; then
  getent group kvm >/dev/null || groupadd --system kvm
  chgrp kvm /dev/kvm && chmod 0660 /dev/kvm
fi

# D-Bus system bus and polkit (libvirt asks polkit for unprivileged users).
mkdir -p /run/dbus
if ! alive /run/dbus/pid; then
  rm -f /run/dbus/pid /run/dbus/system_bus_socket
  dbus-daemon --system --fork
  restart_libvirt=1
fi
if ! pgrep -x polkitd >/dev/null; then
  /usr/lib/polkit-1/polkitd --no-debug >/var/log/virthost-polkitd.log 2>&1 &
  for _ in $(seq 50); do
    busctl --system status org.freedesktop.PolicyKit1 >/dev/null 2>&1 && break
    sleep 0.1
  done
fi

ip netns list | grep -qw "$NS" || ip netns add "$NS"
ip netns exec "$NS" ip link set lo up

if ! alive /run/virtlogd.pid; then
  ip netns exec "$NS" virtlogd -d
fi
if alive /run/libvirtd.pid && [ "${restart_libvirt:-0}" = 1 ]; then
  # libvirtd binds to the system bus at start: restart it when the bus is new.
  kill "$(cat /run/libvirtd.pid)"
  for _ in $(seq 50); do alive /run/libvirtd.pid || break; sleep 0.1; done
fi
if ! alive /run/libvirtd.pid; then
  ip netns exec "$NS" libvirtd -d
fi
for _ in $(seq 100); do
  virsh -c qemu:///system version >/dev/null 2>&1 && break
  sleep 0.1
done
virsh -c qemu:///system version >/dev/null
echo "start-services: dbus, polkitd, virtlogd, libvirtd (netns $NS) running"
