#!/usr/bin/env bash
# Installs Debian's headless-capable Chromium and its WebDriver (packages chromium and
# chromium-driver) for the page tests (tests/browser.py). Silent, and does nothing, when
# /usr/bin/chromium and /usr/bin/chromedriver are already there.
set -euo pipefail

if [[ -x /usr/bin/chromium && -x /usr/bin/chromedriver ]]; then
  exit 0
fi

if [[ "$(id -u)" -eq 0 ]]; then
  sudo=()
elif command -v sudo >/dev/null 2>&1; then
  sudo=(sudo)
else
  echo "install_chromium.sh: /usr/bin/chromium or /usr/bin/chromedriver is missing, and" \
    "installing the Debian packages chromium and chromium-driver needs root (no sudo here)." >&2
  exit 1
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "install_chromium.sh: no apt-get; install Chromium and chromedriver so that" \
    "/usr/bin/chromium and /usr/bin/chromedriver exist." >&2
  exit 1
fi

# Another installer (deploy/airflow/postgres.sh, on the other test worker) may hold apt's
# locks: wait for them rather than fail.
wait=(-o DPkg::Lock::Timeout=600)
if ! { "${sudo[@]}" apt-get "${wait[@]}" update -qq \
  && "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get "${wait[@]}" install -y -qq chromium chromium-driver; }; then
  echo "install_chromium.sh: apt-get could not install chromium and chromium-driver." >&2
  exit 1
fi

for bin in /usr/bin/chromium /usr/bin/chromedriver; do
  if [[ ! -x "$bin" ]]; then
    echo "install_chromium.sh: $bin is still missing after installing the packages." >&2
    exit 1
  fi
done
