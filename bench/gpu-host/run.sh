#!/usr/bin/env bash
# Runs the packed gpu benchmark (pack.sh) on a GPU machine: unpacks Node, starts Xvfb on :99 with
# the packed libraries, points glvnd at NVIDIA's EGL where the driver is mounted under
# /usr/local/nvidia, and runs bench/bin/gpu.mjs with the given arguments through the stand-in
# libGL.so.1. Prints the renderer line first: it names the GPU when headless GL reached it.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
node=${TMPDIR:-/tmp}/caffe-ts-gpu-node
xz -dc "$here/node.xz" > "$node" && chmod +x "$node"
# Xvfb looks for its keyboard data and compiler at their usual places.
[ -d /usr/share/X11/xkb ] || { mkdir -p /usr/share/X11 && tar -xf "$here/xkb.tar" -C /usr/share/X11; }
command -v xkbcomp > /dev/null || cp "$here/bin/xkbcomp" /usr/bin/xkbcomp
LD_LIBRARY_PATH=$here/lib "$here/bin/Xvfb" :99 -screen 0 640x480x24 -nolisten tcp > "${TMPDIR:-/tmp}/caffe-ts-xvfb.log" 2>&1 &
xvfb=$!
trap 'kill $xvfb 2> /dev/null' EXIT
sleep 2
export DISPLAY=:99
vendor=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
[ -f "$vendor" ] && export __EGL_VENDOR_LIBRARY_FILENAMES=$vendor
export LD_LIBRARY_PATH=$here/shim:$here/lib:/usr/local/nvidia/lib64:/usr/local/nvidia/lib
if [ $# -eq 0 ]; then set -- --modes headlessgl --gemm 1024; fi
"$node" "$here/bench/bin/gpu.mjs" "$@"
