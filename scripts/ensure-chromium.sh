#!/usr/bin/env bash
# Make sure Debian's `chromium` is at /usr/bin/chromium for the browser tests (tests/browser, driven by
# Playwright for Python with executable_path; we never run `playwright install`, which downloads browsers).
# Idempotent: does nothing when the browser is already there.
set -euo pipefail
CHROMIUM=/usr/bin/chromium
[ -x "$CHROMIUM" ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "chromium is missing and cannot be installed here (needs root and apt-get); the browser tests will skip" >&2
  exit 0
fi
echo "chromium missing: installing Debian's chromium package (apt-get)" >&2
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium fonts-noto-cjk >/dev/null
[ -x "$CHROMIUM" ]
