#!/usr/bin/env bash
# Installs everything caffe-ts needs on a fresh clone and builds the packages.
# Safe to run again: each step is skipped or cheap when already done.
set -euo pipefail
cd "$(dirname "$0")/.."

# System packages: Chromium (browser tests: the playground and the browser bundle), Xvfb (a
# display for headless GL), the X11/GL headers headless-gl compiles against, and OpenBLAS, which
# @caffe-ts/backend-native's addon links. Installed only when missing; without root or apt the
# affected tests skip and say why.
apt_packages=(chromium xvfb xauth libxi-dev libx11-dev libxext-dev libgl1-mesa-dev pkg-config libopenblas-dev)
missing=()
for pkg in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  if command -v apt-get >/dev/null 2>&1; then
    sudo=""
    [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1 && sudo="sudo"
    if [ "$(id -u)" -eq 0 ] || [ -n "$sudo" ]; then
      echo "Installing system packages: ${missing[*]}"
      export DEBIAN_FRONTEND=noninteractive
      $sudo apt-get -o DPkg::Lock::Timeout=600 update -qq || true
      $sudo apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    else
      echo "warning: missing system packages (${missing[*]}) and no root to install them: browser, GL and native-kernel tests will skip" >&2
    fi
  else
    echo "warning: no apt-get; missing ${missing[*]}: browser, GL and native-kernel tests will skip" >&2
  fi
fi

want_pnpm=$(node -p "require('./package.json').packageManager.split('@')[1]")
if ! command -v pnpm >/dev/null 2>&1 || [ "$(pnpm --version 2>/dev/null)" != "$want_pnpm" ]; then
  echo "Installing pnpm $want_pnpm with npm"
  npm install --global --no-fund --no-audit "pnpm@$want_pnpm" >/dev/null
fi

# node-lmdb (LMDB for @caffe-ts/io-leveldb) compiles against this Node's headers: its prebuilt
# binaries need a newer glibc, and node-gyp cannot download headers without network access.
node_prefix=$(node -p "require('path').resolve(process.execPath, '..', '..')")
if [ -z "${npm_config_nodedir:-}" ] && [ -f "$node_prefix/include/node/node_api.h" ]; then
  export npm_config_nodedir="$node_prefix"
fi

pnpm install --frozen-lockfile
pnpm build
