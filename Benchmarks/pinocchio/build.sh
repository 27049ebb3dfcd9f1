#!/bin/sh
# Pinocchio (the PyPI wheel `pin`, which ships its C++ library and headers) in a venv under .build, and
# Benchmarks/pinocchio/pinbench.cpp compiled against it. Each step is skipped when already done.
#   Benchmarks/pinocchio/build.sh          venv, then .build/pinocchio-bench/pinbench
#   Benchmarks/pinocchio/build.sh --venv   the venv only (for Tests/Fixtures/kinematics/generate_reference.py)
# First run: about 20 s to install (about 480 MB), then 2 to 3 minutes to compile. Needs python3 with venv,
# a C++17 compiler ($CXX, else g++, c++ or clang++) and Eigen's headers in /usr/include/eigen3
# (Debian/Ubuntu: libeigen3-dev, which `make deps` installs).
# Progress goes to stderr; nothing to stdout.
set -e
cd "$(dirname "$0")/../.."
PIN_VERSION=4.1.0
# The wheel has urdfdom's library but not its (header-only) headers, which Pinocchio's URDF parser includes.
URDFDOM_HEADERS_VERSION=3.0.0
VENV=.build/pinocchio-venv
OUT=.build/pinocchio-bench
PYTHON=${PYTHON:-python3}

prefix() { echo "$VENV"/lib/python3*/site-packages/cmeel.prefix; }

if ! "$VENV/bin/python" -c "import pinocchio, sys; sys.exit(pinocchio.__version__ != '$PIN_VERSION')" 2>/dev/null \
  || [ ! -f "$(prefix)/include/urdfdom_headers/urdf_model/model.h" ]; then
  echo "Installing Pinocchio $PIN_VERSION (pip: pin) into $VENV" >&2
  [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check \
    "pin==$PIN_VERSION" "cmeel-urdfdom-headers==$URDFDOM_HEADERS_VERSION" >&2
fi
[ "$1" = "--venv" ] && exit 0

P=$(cd "$(prefix)" && pwd)
[ -f /usr/include/eigen3/Eigen/Core ] || {
  echo "Eigen's headers are missing (/usr/include/eigen3): apt-get install libeigen3-dev" >&2
  exit 2
}
if [ -z "$CXX" ]; then
  for CXX in g++ c++ clang++; do command -v "$CXX" >/dev/null 2>&1 && break; done
fi
# The definitions are those the wheel's CMake targets export (lib/cmake/pinocchio/pinocchioTargets.cmake):
# Boost.MPL and Fusion limits that change Pinocchio's types, the URDF headers' version, and
# PINOCCHIO_ENABLE_TEMPLATE_INSTANTIATION so the algorithms come from libpinocchio_default. No -march=native:
# it would change Eigen's alignment and so the layout of the types shared with the wheel's library.
set -- "$CXX" -std=c++17 -O3 -DNDEBUG \
  -DBOOST_MPL_LIMIT_LIST_SIZE=30 -DBOOST_MPL_LIMIT_VECTOR_SIZE=30 -DBOOST_MPL_CFG_NO_PREPROCESSED_HEADERS \
  -DBOOST_FUSION_INVOKE_MAX_ARITY=12 -DPINOCCHIO_ENABLE_TEMPLATE_INSTANTIATION -DPINOCCHIO_WITH_URDFDOM \
  -DPINOCCHIO_URDFDOM_HEADERS_MAJOR_VERSION=3 -DPINOCCHIO_URDFDOM_HEADERS_MINOR_VERSION=0 \
  -DPINOCCHIO_URDFDOM_HEADERS_PATCH_VERSION=0 \
  -isystem "$P/include" -isystem "$P/include/urdfdom_headers" -isystem /usr/include/eigen3 \
  Benchmarks/pinocchio/pinbench.cpp -o "$OUT/pinbench" \
  -L"$P/lib" -Wl,-rpath,"$P/lib" -lpinocchio_parsers -lpinocchio_default -lurdfdom_model -lboost_serialization
mkdir -p "$OUT"
# Recompile when the source is newer than the program or the command changed (another venv, compiler...).
if [ ! -x "$OUT/pinbench" ] || [ Benchmarks/pinocchio/pinbench.cpp -nt "$OUT/pinbench" ] \
  || [ "$(cat "$OUT/command" 2>/dev/null)" != "$*" ]; then
  echo "Compiling $OUT/pinbench against Pinocchio $PIN_VERSION (a few minutes)" >&2
  rm -f "$OUT/pinbench" "$OUT/command"
  "$@" >&2
  echo "$*" >"$OUT/command"
fi
