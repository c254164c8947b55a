#!/usr/bin/env bash
# Trains BVLC's own MNIST solvers with caffe-ts on the digits bundled with it (not part of CI:
# each run takes minutes). The prototxts are C++ Caffe's files from the corpus
# (nets/mnist_lenet: Adam, RMSProp, AdaDelta, multistep SGD; nets/mnist_autoencoder: Nesterov),
# used as they are: the databases are put where they expect them (examples/mnist/*_lmdb under
# a work folder, which is the working directory), so no source or net path needs changing.
# Only the run length changes, for time: max_iter, test_iter (the held-out split has 1,666
# digits, not 10,000) and snapshot (once, at the end).
#
#   bash scripts/run-bvlc-solvers.sh            # needs a build (pnpm build) and ../shared/corpus
#   MAX_ITER=500 AE_MAX_ITER=500 WORK=/tmp/bvlc bash scripts/run-bvlc-solvers.sh adam nesterov
#
# Environment: MAX_ITER (LeNet runs, default 1000), AE_MAX_ITER (autoencoder, default 2000),
# WORK (work folder, default a new temp folder; databases are reused when present), CORPUS.
# Arguments: which runs (adam rmsprop adadelta multistep nesterov; default all). Prints the last
# test scores of each run and writes them to $WORK/summary.txt.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
corpus="${CORPUS:-$root/../shared/corpus}"
work="${WORK:-$(mktemp -d -t caffe-ts-bvlc-XXXXXX)}"
max_iter="${MAX_ITER:-1000}"
ae_max_iter="${AE_MAX_ITER:-2000}"
cli="$root/packages/cli/dist/bin.js"
[ -f "$cli" ] || { echo "no build: run pnpm build first ($cli is missing)" >&2; exit 1; }
[ -d "$corpus/nets/mnist_lenet" ] || { echo "no corpus at $corpus (set CORPUS)" >&2; exit 1; }
runs=("$@")
[ ${#runs[@]} -gt 0 ] || runs=(adam rmsprop adadelta multistep nesterov)

caffe() { node "$cli" "$@"; }
mkdir -p "$work/examples/mnist"
cd "$work"
for split in train test; do
  [ -d "examples/mnist/mnist_${split}_lmdb" ] || caffe convert_mnist --bundled "$split" "examples/mnist/mnist_${split}_lmdb" --backend lmdb
done
cp "$corpus/nets/mnist_lenet/lenet_train_test.prototxt" "$corpus/nets/mnist_autoencoder/mnist_autoencoder.prototxt" examples/mnist/

# Copy a BVLC solver, changing only how long it runs.
shorten() { # solver_file max_iter test_iters(space-separated, in order)
  local src="$1" iters="$2"; shift 2
  local out="examples/mnist/$(basename "$src")"
  awk -v iters="$iters" -v tests="$*" '
    BEGIN { n = split(tests, t, " ") }
    /^max_iter:/ { print "max_iter: " iters; next }
    /^snapshot:/ { print "snapshot: " iters; next }
    /^test_iter:/ { k++; print "test_iter: " (k <= n ? t[k] : $2); next }
    { print }' "$src" > "$out"
  echo "$out"
}

summary="$work/summary.txt"
: > "$summary"
run() { # name solver_file max_iter test_iters...
  local name="$1" src="$2" iters="$3"; shift 3
  local solver; solver="$(shorten "$src" "$iters" "$@")"
  local log="$work/$name.log"
  echo "== $name: $(basename "$src"), $iters iterations (log: $log)"
  local start=$SECONDS
  caffe train --solver "$solver" > "$log" 2>&1 || { echo "$name failed, see $log" >&2; tail -5 "$log" >&2; return 1; }
  local secs=$((SECONDS - start))
  # The final test pass: the last "Iteration N, Testing net" block of each test net.
  local last
  last="$(grep -E 'Test net output|Testing net|Test loss' "$log" | awk '/Testing net \(#0\)/ { block = "" } { block = block $0 "\n" } END { printf "%s", block }' |
    sed -E 's/^.*\] //' | grep -E 'Test net output|Test loss|Testing net' | tr '\n' ';' | sed 's/;$//' || true)"
  local train_loss
  train_loss="$(grep -E '\] Iteration [0-9]+, loss = ' "$log" | tail -1 | sed -E 's/^.*\] //' || true)"
  printf '%-10s %-42s %5s iters %5ss | %s | %s\n' "$name" "$(basename "$src")" "$iters" "$secs" "$train_loss" "$last" | tee -a "$summary"
}

for r in "${runs[@]}"; do
  case "$r" in
    adam) run adam "$corpus/nets/mnist_lenet/lenet_solver_adam.prototxt" "$max_iter" 17 ;;
    rmsprop) run rmsprop "$corpus/nets/mnist_lenet/lenet_solver_rmsprop.prototxt" "$max_iter" 17 ;;
    adadelta) run adadelta "$corpus/nets/mnist_lenet/lenet_adadelta_solver.prototxt" "$max_iter" 17 ;;
    multistep) run multistep "$corpus/nets/mnist_lenet/lenet_multistep_solver.prototxt" "$max_iter" 17 ;;
    # test-on-train: 83 batches of 100 = the 8,334 training digits; test-on-test: the 1,666 held out.
    nesterov) run nesterov "$corpus/nets/mnist_autoencoder/mnist_autoencoder_solver_nesterov.prototxt" "$ae_max_iter" 83 17 ;;
    *) echo "unknown run '$r' (adam rmsprop adadelta multistep nesterov)" >&2; exit 1 ;;
  esac
done
echo "summary: $summary"
