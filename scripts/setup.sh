#!/usr/bin/env bash
# Installs everything caffe-ts needs on a fresh clone and builds the packages.
# Safe to run again: each step is skipped or cheap when already done.
set -euo pipefail
cd "$(dirname "$0")/.."

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
