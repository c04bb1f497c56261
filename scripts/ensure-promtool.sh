#!/usr/bin/env bash
# Make sure `promtool` is on PATH for tests/deploy/test_alerts.py (it checks and unit-tests the alert rules).
# Debian's `prometheus` package ships it. We only want the binary: no recommended exporters, and any
# Prometheus server the package's postinst started is stopped again (tests never need one).
set -euo pipefail
command -v promtool >/dev/null && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "promtool is missing and cannot be installed here (needs root and apt-get); the alert rule tests will skip" >&2
  exit 0
fi
echo "promtool missing: installing Debian's prometheus package for it (apt-get)" >&2
apt-get update -qq
# policy-rc.d exit 101 tells invoke-rc.d not to start services from the postinst.
policy=/usr/sbin/policy-rc.d
created_policy=false
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && created_policy=true
fi
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
if [ "$created_policy" = true ]; then rm -f "$policy"; fi
# Belt and braces where an init system started it anyway.
if command -v systemctl >/dev/null && systemctl is-active --quiet prometheus 2>/dev/null; then
  systemctl disable --now prometheus >/dev/null 2>&1 || true
elif [ -x /etc/init.d/prometheus ]; then
  /etc/init.d/prometheus stop >/dev/null 2>&1 || true
fi
command -v promtool >/dev/null
