#!/usr/bin/env bash
# Packs everything the gpu benchmark needs on a Linux x86-64 GPU machine that has neither X nor
# Node nor this repository's install into one folder (about 50 MB), from a Debian machine where
# the repository is built and Xvfb is installed (`apt-get install xvfb libx11-dev libegl-dev`):
#
#   pnpm build && bash bench/gpu-host/pack.sh OUT
#   # there: bash OUT/run.sh [gpu.mjs arguments]   (default: --modes headlessgl --gemm 1024)
#
# OUT holds the bundled benchmark (bench/src/bundle-gpu.mjs), this machine's Node binary (xz),
# the stand-in libGL.so.1 (glx-over-egl.c, built here), Xvfb and xkbcomp with the libraries they,
# headless-gl's native module and the stand-in link to (but the C and C++ runtimes, which any
# such machine has), the xkb data, and run.sh. See README.md for why each piece is there.
set -euo pipefail
out=${1:?usage: pack.sh OUT}
root=$(cd "$(dirname "$0")/../.." && pwd)
rm -rf "$out" && mkdir -p "$out/lib" "$out/bin" "$out/shim"
out=$(cd "$out" && pwd)
node "$root/bench/src/bundle-gpu.mjs" --out "$out/bench"
xz -T0 -6 -c "$(command -v node)" > "$out/node.xz"
gcc -O2 -shared -fPIC -o "$out/shim/libGL.so.1" "$root/bench/gpu-host/glx-over-egl.c" -ldl -lX11
cp "$(command -v Xvfb)" "$(command -v xkbcomp)" "$out/bin/"
egl=$(ldconfig -p | awk '/libEGL.so.1 .*x86-64/ {print $NF; exit}')
for f in "$out/bin/Xvfb" "$out/bin/xkbcomp" "$out/bench/bin/webgl.node" "$out/shim/libGL.so.1" "$egl"; do
  ldd "$f" | awk '/=>/ {print $3}'
done | sort -u | grep -v -E '/(libc|libm|libdl|libpthread|librt|ld-linux[^/]*|libstdc\+\+|libgcc_s)\.so' | while read -r lib; do
  cp -L "$lib" "$out/lib/"
done
cp -L "$egl" "$(ldconfig -p | awk '/libGLdispatch.so.0 .*x86-64/ {print $NF; exit}')" "$out/lib/"
# lib/ keeps glvnd's libGL.so.1 for Xvfb; Node's headless GL finds the stand-in first (run.sh).
tar -cf "$out/xkb.tar" -C /usr/share/X11 xkb
cp "$root/bench/gpu-host/run.sh" "$out/run.sh"
du -sh "$out"
