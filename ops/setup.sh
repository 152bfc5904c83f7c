#!/usr/bin/env bash
# Installs everything the demo and the tests need on a fresh Debian 12 machine (root):
# Debian packages for the real peers, then a virtualenv with the project and its test extras.
set -euo pipefail
cd "$(dirname "$0")/.."
APT_PACKAGES=(redis-server freeradius freeradius-utils xl2tpd l2tpns ppp pppoe tshark
              iproute2 tcpdump procps iputils-ping qemu-system-x86 busybox-static systemd util-linux
              iperf3)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating virtualenv .venv"
  "$PY" -m venv .venv
fi
stamp=.venv/.installed-$(sha1sum pyproject.toml | cut -c1-12)
if [ ! -f "$stamp" ]; then
  echo "setup: installing l2tp-broker and test dependencies into .venv"
  .venv/bin/pip install -q --upgrade pip >/dev/null
  .venv/bin/pip install -q -e '.[test]'
  rm -f .venv/.installed-*; touch "$stamp"
fi
