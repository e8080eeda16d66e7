#!/usr/bin/env bash
# One-time set-up on a fresh machine: OS packages the service needs (when missing),
# npm ci (which also builds), and the Electron binary when it can be downloaded.
set -euo pipefail
cd "$(dirname "$0")/.."

need_packages=()
command -v redis-server >/dev/null 2>&1 || need_packages+=(redis-server)
# socat: the simulated boards of `npm run lab:*` and the tests run on its ptys.
command -v socat >/dev/null 2>&1 || need_packages+=(socat)
# chromium: the browser the UI tests and `npm run screenshots` drive (Linux only).
if [ "$(uname -s)" = Linux ] && [ ! -x /usr/bin/chromium ]; then need_packages+=(chromium); fi

if [ ${#need_packages[@]} -gt 0 ]; then
  echo "setup: installing ${need_packages[*]}"
  if command -v apt-get >/dev/null 2>&1; then
    sudo_cmd=""
    [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${need_packages[@]}"
    # Cloudmanager runs its own redis-server; the distribution's service is not needed.
    $sudo_cmd systemctl disable --now redis-server >/dev/null 2>&1 || $sudo_cmd service redis-server stop >/dev/null 2>&1 || true
  elif command -v brew >/dev/null 2>&1; then
    brew install redis socat  # UI tests on macOS: set CHROMIUM_PATH to a Chrome or Chromium
  else
    echo "setup: please install Redis 7 (redis-server) and socat with your package manager, then run this again" >&2
    exit 1
  fi
fi

# The Electron binary is fetched separately below, so a machine without internet access
# still gets a working install (the service runs headless there).
ELECTRON_SKIP_BINARY_DOWNLOAD=1 REDISMS_DISABLE_POSTINSTALL=1 npm ci --no-audit --no-fund

if [ ! -d node_modules/electron/dist ]; then
  if node node_modules/electron/install.js >/dev/null 2>&1; then
    echo "setup: Electron installed; npm start opens the desktop app"
  else
    echo "setup: Electron could not be downloaded; npm start runs the service headless"
  fi
fi
echo "setup: done. Start with: npm start"
