#!/usr/bin/env bash
# Packs the publishable packages (packages/*) into tarballs, as `pnpm publish` would upload them:
# `workspace:` ranges become real versions, only the `files` of each package go in.
#
#   bash scripts/pack-packages.sh [--build] DEST [FOLDER...]
#
# DEST is created if needed; FOLDER names packages/<FOLDER> (default: all of them).
# --build runs `pnpm build` first (turbo: cached when nothing changed); without it the packages'
# dist/ must exist. Prints the absolute path of each tarball, one a line, on stdout.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"

build=0
if [ "${1:-}" = "--build" ]; then build=1; shift; fi
if [ $# -lt 1 ]; then
  echo "usage: bash scripts/pack-packages.sh [--build] DEST [FOLDER...]" >&2
  exit 2
fi
dest="$1"; shift
mkdir -p "$dest"
dest="$(cd "$dest" && pwd)"

if [ $# -gt 0 ]; then folders=("$@"); else
  folders=()
  for d in "$root"/packages/*/; do folders+=("$(basename "$d")"); done
fi

if [ "$build" = 1 ]; then
  build_log="$(mktemp "${TMPDIR:-/tmp}/caffe-ts-build.XXXXXX")"
  if ! (cd "$root" && pnpm build) >"$build_log" 2>&1; then
    cat "$build_log" >&2
    rm -f "$build_log"
    echo "pack-packages: pnpm build failed" >&2
    exit 1
  fi
  rm -f "$build_log"
fi

for f in "${folders[@]}"; do
  dir="$root/packages/$f"
  if [ ! -f "$dir/package.json" ]; then
    echo "pack-packages: no package at packages/$f" >&2
    exit 1
  fi
  if [ ! -f "$dir/dist/index.js" ]; then
    echo "pack-packages: packages/$f/dist/index.js is missing: run 'pnpm build' (or pass --build)" >&2
    exit 1
  fi
  name=$(node -p "require('$dir/package.json').name")
  version=$(node -p "require('$dir/package.json').version")
  # @scope/name@v packs as scope-name-v.tgz
  tgz="$dest/$(echo "${name#@}" | tr '/' '-')-$version.tgz"
  rm -f "$tgz"
  (cd "$dir" && pnpm pack --pack-destination "$dest" --silent >/dev/null)
  if [ ! -f "$tgz" ]; then
    echo "pack-packages: pnpm pack did not write $tgz" >&2
    exit 1
  fi
  echo "$tgz"
done
