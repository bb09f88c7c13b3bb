#!/usr/bin/env bash
# Make sure the browser tests (dashboard/tests/test_browser.py) have Debian's headless
# Chromium and its driver. Installs them with apt-get when missing and apt-get can run
# (root, or sudo without a password); otherwise says so and carries on: those tests
# then skip with the reason, and the rest of the suite runs.
set -uo pipefail

have() { command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; }
have && exit 0

if [ "$(id -u)" -eq 0 ]; then
  as_root=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  as_root=(sudo -n)
else
  echo "ensure_browser: chromium/chromium-driver missing and apt-get needs root; browser tests will skip." >&2
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "ensure_browser: no apt-get here; install chromium and its driver yourself, or browser tests will skip." >&2
  exit 0
fi

echo "Installing chromium and chromium-driver (Debian packages) for the browser tests ..." >&2
export DEBIAN_FRONTEND=noninteractive
if "${as_root[@]}" apt-get update -qq && "${as_root[@]}" apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null; then
  have && exit 0
fi
echo "ensure_browser: could not install chromium and chromium-driver; browser tests will skip." >&2
exit 0
