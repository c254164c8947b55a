#!/usr/bin/env bash
# Lints each publishable package as it would be published: packs it (scripts/pack-packages.sh),
# then checks the tarball with
#   - publint (--strict): exports/files/types that point at missing or wrong files, etc.;
#   - @arethetypeswrong/cli (profile esm-only: the packages are ESM only, so require() from
#     CommonJS is not offered): types that do not resolve, or resolve to the wrong module kind;
#   - our own rules (scripts/lint-packages-rules.mjs): LICENSE/README/CHANGELOG shipped, no
#     `workspace:` range left, plugins take the core as peerDependencies, sideEffects lists only
#     the ./register entries.
#
#   bash scripts/lint-packages.sh [--build] [FOLDER...]      (root: pnpm lint:packages)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

build=()
if [ "${1:-}" = "--build" ]; then build=(--build); shift; fi

work="$(mktemp -d "${TMPDIR:-/tmp}/caffe-ts-lint-packages.XXXXXX")"
trap 'rm -rf "$work"' EXIT

mapfile -t tarballs < <(bash scripts/pack-packages.sh "${build[@]}" "$work" "$@")

bin="$root/node_modules/.bin"
failed=0
for tgz in "${tarballs[@]}"; do
  name="$(basename "$tgz" .tgz)"
  echo "== $name"
  if ! "$bin/publint" run "$tgz" --strict --level suggestion >"$work/publint.log" 2>&1 \
    || grep -qE '^(Errors|Warnings|Suggestions):' "$work/publint.log"; then
    cat "$work/publint.log"
    echo "   publint: FAILED"
    failed=1
  else
    echo "   publint: ok"
  fi

  # caffe.proto is a data file exported for other tools, not a module: nothing to type-check.
  attw_args=(--profile esm-only --format ascii --no-color --no-emoji)
  if tar -xzOf "$tgz" package/package.json | grep -q '"./caffe.proto"'; then
    attw_args+=(--exclude-entrypoints ./caffe.proto)
  fi
  if ! "$bin/attw" "$tgz" "${attw_args[@]}" >"$work/attw.log" 2>&1; then
    cat "$work/attw.log"
    echo "   attw: FAILED"
    failed=1
  else
    echo "   attw: ok ($(grep -c '^"@caffe-ts/' "$work/attw.log") entry points)"
  fi

  if ! node scripts/lint-packages-rules.mjs "$tgz"; then
    failed=1
  fi
done

if [ "$failed" != 0 ]; then
  echo "lint-packages: problems found (see above)" >&2
  exit 1
fi
echo "lint-packages: ${#tarballs[@]} packages ok"
