#!/usr/bin/env bash
# Builds the prgcn_msgs interface package and installs it into the venv's prefix,
# so `from prgcn_msgs.msg import ...` works with nothing sourced at run time.
set -euo pipefail
venv=$(cd "${1:-.venv}" && pwd)
build=${2:-build/prgcn_msgs}
mkdir -p "$(dirname "$build")"
export PATH="$venv/bin:$PATH" AMENT_PREFIX_PATH="$venv"
cmake -S prgcn_msgs -B "$build" -DCMAKE_INSTALL_PREFIX="$venv" -DCMAKE_BUILD_TYPE=Release \
  -DPython3_EXECUTABLE="$venv/bin/python" -DBUILD_TESTING=OFF > "$build.configure.log" 2>&1 \
  || { cat "$build.configure.log" >&2; echo "build_msgs: cmake configure failed (log above)" >&2; exit 1; }
cmake --build "$build" -j "$(nproc)" > "$build.build.log" 2>&1 \
  || { tail -50 "$build.build.log" >&2; echo "build_msgs: build failed (log: $build.build.log)" >&2; exit 1; }
cmake --install "$build" > "$build.install.log" 2>&1 \
  || { tail -50 "$build.install.log" >&2; echo "build_msgs: install failed" >&2; exit 1; }
"$venv/bin/python" -c "from prgcn_msgs.msg import SkeletonArray, ActionArray, RefinedSkeletonArray" \
  || { echo "build_msgs: prgcn_msgs was installed but does not import" >&2; exit 1; }
echo "build_msgs: prgcn_msgs installed into $venv"
