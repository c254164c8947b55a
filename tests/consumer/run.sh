#!/usr/bin/env bash
# Consumer tests: the packages as an application outside this workspace gets them from npm.
#
#   bash tests/consumer/run.sh [CASE...]        (root: pnpm test:consumer)
#
# Packs the packages (scripts/pack-packages.sh; `pnpm build` first, cached by turbo), then for
# each case copies tests/consumer/<CASE>/ to a scratch folder under /tmp, `npm install`s ONLY the
# tarballs its package.json names in caffeTs.packages (plus caffeTs.local: folders under
# tests/consumer packed with `npm pack`), with their third-party dependencies from the npm cache
# (--prefer-offline), and runs its test script (node:test, plain ESM). The scratch folder is
# removed at the end (KEEP=1 keeps it).
#
# Cases (default: all): inference  training  custom-layer  gpu  cli-plugin  import-cost
#   gpu installs the inference packages + backend-gpu with --omit=optional (no headless-gl) and
#   compares LeNet on gpu.js's wasm (or cpu) mode with the CPU backend.
#   cli-plugin installs the caffe command (--omit=optional) beside the scaled-tanh plugin and runs
#   it with --plugin.
#   import-cost measures `import('@caffe-ts/net')` in the training install (which also holds the
#   solver and the LevelDB plugin) and checks that it loads no plugin (tests/consumer/import-cost.mjs).
# Environment: CAFFE_TS_CORPUS (default ../shared/corpus beside the repository, when present) lets
# the inference case classify with C++ Caffe's LeNet weights; SKIP_BUILD=1 packs dist/ as it is.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
here="$root/tests/consumer"
cd "$root"

all_cases=(inference training custom-layer gpu native cli-plugin import-cost)
cases=("$@")
[ ${#cases[@]} -gt 0 ] || cases=("${all_cases[@]}")
for c in "${cases[@]}"; do
  case " ${all_cases[*]} " in *" $c "*) ;; *) echo "consumer: unknown case '$c' (cases: ${all_cases[*]})" >&2; exit 2 ;; esac
done

if [ -z "${CAFFE_TS_CORPUS:-}" ] && [ -d "$root/../shared/corpus" ]; then
  export CAFFE_TS_CORPUS="$(cd "$root/../shared/corpus" && pwd)"
fi
# node-lmdb (an optional dependency of io-leveldb) compiles against the local Node headers; the
# same setting as scripts/setup.sh, so npm needs no download for it.
node_prefix=$(node -p "require('path').resolve(process.execPath, '..', '..')")
if [ -z "${npm_config_nodedir:-}" ] && [ -f "$node_prefix/include/node/node_api.h" ]; then
  export npm_config_nodedir="$node_prefix"
fi

scratch="$(mktemp -d "${TMPDIR:-/tmp}/caffe-ts-consumer.XXXXXX")"
cleanup() {
  if [ "${KEEP:-0}" = 1 ]; then echo "consumer: kept $scratch"; else rm -rf "$scratch"; fi
}
trap cleanup EXIT
start=$SECONDS

build=(--build)
[ "${SKIP_BUILD:-0}" = 1 ] && build=()
echo "consumer: packing the packages"
bash scripts/pack-packages.sh "${build[@]}" "$scratch/tarballs" >/dev/null

passed=0
failed=0
failed_cases=()

# install CASE_DIR: npm install the tarballs that CASE_DIR/package.json asks for.
install_case() {
  local dir="$1" specs=() p tgz
  for p in $(node -p "(require('$dir/package.json').caffeTs?.packages ?? []).join(' ')"); do
    specs+=("$scratch/tarballs/caffe-ts-$p-$(node -p "require('$root/packages/$p/package.json').version").tgz")
  done
  for p in $(node -p "(require('$dir/package.json').caffeTs?.local ?? []).join(' ')"); do
    tgz=$(cd "$here/$p" && npm pack --silent --pack-destination "$scratch/tarballs" | tail -1)
    specs+=("$scratch/tarballs/$tgz")
  done
  # caffeTs.npmArgs: extra npm flags for the case (gpu: --omit=optional, no headless-gl build).
  local args=()
  for p in $(node -p "(require('$dir/package.json').caffeTs?.npmArgs ?? []).join(' ')"); do args+=("$p"); done
  (cd "$dir" && npm install --no-audit --no-fund --prefer-offline --loglevel=error ${args[@]+"${args[@]}"} "${specs[@]}") >"$dir/npm-install.log" 2>&1 || {
    cat "$dir/npm-install.log" >&2
    echo "consumer: npm install failed in $dir" >&2
    return 1
  }
  # Every @caffe-ts package must come from our tarballs, never from a registry.
  node -e "
    const lock = require('$dir/package-lock.json');
    const bad = Object.entries(lock.packages).filter(([k, v]) => /node_modules\/@caffe-ts\//.test(k) && !String(v.resolved ?? '').startsWith('file:'));
    if (bad.length) { console.error('consumer: @caffe-ts packages not from the tarballs: ' + bad.map(([k, v]) => k + ' <- ' + v.resolved).join(', ')); process.exit(1); }"
}

# run_tests DIR NAME: run the case's node:test file, count its results.
run_tests() {
  local dir="$1" name="$2" out rc=0
  out="$scratch/$name.tap"
  (cd "$dir" && npm test --silent) >"$out" 2>&1 || rc=$?
  sed 's/^/  /' "$out"
  local p f
  p=$(grep -E '^# pass [0-9]+' "$out" | tail -1 | awk '{print $3}')
  f=$(grep -E '^# fail [0-9]+' "$out" | tail -1 | awk '{print $3}')
  passed=$((passed + ${p:-0}))
  failed=$((failed + ${f:-0}))
  if [ "$rc" != 0 ] || [ -z "$p" ]; then
    [ "${f:-0}" != 0 ] || failed=$((failed + 1))
    failed_cases+=("$name")
  fi
}

setup_case() {
  local name="$1" dir="$scratch/$1"
  if [ ! -d "$dir" ]; then
    mkdir -p "$dir"
    (cd "$here/$name" && tar --exclude=node_modules -cf - .) | (cd "$dir" && tar -xf -)
    local t=$SECONDS
    install_case "$dir"
    echo "consumer: $name: installed $(node -p "(require('$dir/package.json').caffeTs?.packages ?? []).map(p => '@caffe-ts/' + p).concat(require('$dir/package.json').caffeTs?.local ?? []).join(', ')") in $((SECONDS - t)) s"
  fi
}

for c in "${cases[@]}"; do
  if [ "$c" = import-cost ]; then
    # The training install holds the solver and the LevelDB plugin: importing the net must load
    # neither. Reuse it when the training case already made it.
    if setup_case training; then
      cp "$here/import-cost.mjs" "$scratch/training/import-cost.mjs"
      if (cd "$scratch/training" && node import-cost.mjs); then passed=$((passed + 1)); else failed=$((failed + 1)); failed_cases+=(import-cost); fi
    else
      failed=$((failed + 1)); failed_cases+=(import-cost)
    fi
    continue
  fi
  echo "consumer: $c"
  if setup_case "$c"; then
    run_tests "$scratch/$c" "$c"
  else
    failed=$((failed + 1)); failed_cases+=("$c")
  fi
done

echo "consumer: ${#cases[@]} cases in $((SECONDS - start)) s${failed_cases:+; failed: ${failed_cases[*]}}"
echo "consumer: $passed passed, $failed failed"
[ "$failed" = 0 ]
