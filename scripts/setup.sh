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

pnpm install --frozen-lockfile
pnpm build
