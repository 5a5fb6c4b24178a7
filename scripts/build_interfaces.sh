#!/usr/bin/env bash
# Build every ROS 2 interface package under ros2_ws/vendor/*/ and ros2_ws/src/*/ (those whose
# CMakeLists.txt calls rosidl_generate_interfaces) with plain cmake and install it into a Python venv that holds the
# ROS 2 Kilted PyPI wheels (DESIGN.md §4). A full ROS 2 install uses `colcon build` instead.
#
# ros2_ws/vendor/ holds standard ROS 2 messages that no PyPI wheel ships (tf2_msgs); colcon skips
# it (COLCON_IGNORE), a full install has the real packages.
#
# usage: scripts/build_interfaces.sh [VENV [PACKAGE...]]   (default: .venv at the repo root, all)
# env:   BUILD_ROOT (default: build/interfaces), JOBS (default: nproc)
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VENV="$(cd "${1:-$ROOT/.venv}" && pwd)"
PY="$VENV/bin/python"
BUILD_ROOT="${BUILD_ROOT:-$ROOT/build/interfaces}"
JOBS="${JOBS:-$(nproc)}"

command -v cmake >/dev/null || { echo "build_interfaces: cmake not found (apt-get install cmake g++)" >&2; exit 1; }

# Wart: the wheels' exported CMake targets name include directories of the machine they were
# built on; CMake refuses missing ones. Make them exist as symlinks to this Python's headers and
# this venv's numpy headers. A symlink there is (re)pointed at this venv on every build (another
# venv's numpy may differ or be gone); a real directory there is a real install: left alone.
ensure_link() {  # ensure_link TARGET LINK
    local target="$1" link="$2"
    if [ -e "$link" ] && [ ! -L "$link" ]; then return; fi
    if [ "$(readlink "$link" 2>/dev/null)" != "$target" ]; then
        mkdir -p "$(dirname "$link")"
        ln -sfn "$target" "$link"
        echo "build_interfaces: linked $link -> $target"
    fi
}
PY_INCLUDE="$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')"
NP_INCLUDE="$("$PY" -c 'import numpy; print(numpy.get_include())')"
ensure_link "$PY_INCLUDE" /opt/python/cp311-cp311/include/python3.11
ensure_link "$NP_INCLUDE" /opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include

export VIRTUAL_ENV="$VENV"
export PATH="$VENV/bin:$PATH"
export CMAKE_PREFIX_PATH="$VENV${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
export AMENT_PREFIX_PATH="$VENV${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"

mkdir -p "$BUILD_ROOT"
built=0
ONLY=" ${*:2} "
for cml in "$ROOT"/ros2_ws/vendor/*/CMakeLists.txt "$ROOT"/ros2_ws/src/*/CMakeLists.txt; do
    [ -f "$cml" ] || continue
    grep -q rosidl_generate_interfaces "$cml" || continue
    src="$(dirname "$cml")"
    name="$(basename "$src")"
    if [ "$ONLY" != "  " ] && [[ "$ONLY" != *" $name "* ]]; then continue; fi
    echo "build_interfaces: $name -> $VENV"
    cmake -S "$src" -B "$BUILD_ROOT/$name" \
        -DCMAKE_INSTALL_PREFIX="$VENV" \
        -DPython3_EXECUTABLE="$PY" \
        -DBUILD_TESTING=OFF \
        -DCMAKE_BUILD_TYPE=Release \
        >"$BUILD_ROOT/$name.configure.log" 2>&1 \
        || { cat "$BUILD_ROOT/$name.configure.log" >&2; exit 1; }
    cmake --build "$BUILD_ROOT/$name" -j "$JOBS" >"$BUILD_ROOT/$name.build.log" 2>&1 \
        || { tail -n 80 "$BUILD_ROOT/$name.build.log" >&2; exit 1; }
    cmake --install "$BUILD_ROOT/$name" >/dev/null
    "$PY" -c "import importlib; importlib.import_module('$name')" \
        || { echo "build_interfaces: $name installed but does not import" >&2; exit 1; }
    built=$((built + 1))
done
echo "build_interfaces: $built package(s) built"
