#!/usr/bin/env bash
# Provisions the Portcullis lab VM (Debian 12): reserves 2 MiB hugepages and mounts hugetlbfs (both kept across
# reboots), loads the tun and 8021q modules, creates two persistent TAP devices for trying net_tap ports by
# hand, then runs the demo once, which installs every package the project needs and builds it.
set -euo pipefail

HUGEPAGES=${HUGEPAGES:-512}
REPO=${REPO:-/portcullis}

echo "== hugepages: ${HUGEPAGES} x 2 MiB"
echo "vm.nr_hugepages = ${HUGEPAGES}" > /etc/sysctl.d/80-portcullis-hugepages.conf
sysctl -q -p /etc/sysctl.d/80-portcullis-hugepages.conf
mkdir -p /dev/hugepages
if ! mountpoint -q /dev/hugepages; then
    mount -t hugetlbfs nodev /dev/hugepages
fi
grep -q '^nodev /dev/hugepages ' /etc/fstab || echo 'nodev /dev/hugepages hugetlbfs defaults 0 0' >> /etc/fstab
free_pages=$(awk '/HugePages_Free/ {print $2}' /proc/meminfo)
echo "   ${free_pages} hugepages free"

echo "== kernel modules: tun, 8021q"
modprobe tun
modprobe 8021q
printf 'tun\n8021q\n' > /etc/modules-load.d/portcullis.conf

echo "== TAP devices pc-tap0, pc-tap1 (for --vdev=net_tap0,iface=pc-tap0 ...)"
for tap in pc-tap0 pc-tap1; do
    ip link show "$tap" >/dev/null 2>&1 || ip tuntap add dev "$tap" mode tap multi_queue
    ip link set "$tap" up
done

echo "== the demo (installs packages, builds, runs the scenario once)"
"${REPO}/tools/demo" --once --hugepages
