#!/usr/bin/env bash
# The whole test suite against an engine built with AddressSanitizer and UBSan.
#
#   bash tools/sanitize.sh [pytest arguments]      (from the repository root, in a venv with
#                                                   the test extra: pip install ".[test]")
#
# The extension is built into build/sanitize and staged with a copy of python/nettrim in
# build/sanitize/python, so the installed package is left alone.  ASan must be the first
# library loaded, and libstdc++ must come with it or ASan trips on __cxa_throw: both go in
# LD_PRELOAD.  Leak checking is off (CPython's own allocations at exit are reported as leaks);
# any other ASan or UBSan report aborts the test run.  Tests whose timing cannot hold under
# instrumentation (about 2-3x slower) carry the 'timing' mark and are deselected.
set -euo pipefail
cd "$(dirname "$0")/.."
build=build/sanitize
eigen=$(python -c "import cmeel, os; print(os.path.join(os.path.dirname(os.path.dirname(cmeel.__file__)), 'cmeel.prefix'))")
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DNETTRIM_SANITIZE=ON -DNETTRIM_BUILD_PYTHON=ON \
  -DNETTRIM_BUILD_TESTS=ON -DCMAKE_PREFIX_PATH="$eigen" -DPython_EXECUTABLE="$(command -v python)" \
  -Dpybind11_DIR="$(python -c 'import pybind11; print(pybind11.get_cmake_dir())')" >/dev/null
cmake --build "$build"
rm -rf "$build/python" && mkdir -p "$build/python" && cp -r python/nettrim "$build/python/"
rm -f "$build/python/nettrim/"_core*.so && cp "$build"/_core*.so "$build/python/nettrim/"
ctest --test-dir "$build" --output-on-failure
export LD_PRELOAD="$(gcc -print-file-name=libasan.so):$(gcc -print-file-name=libstdc++.so)"
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:halt_on_error=1:detect_odr_violation=0"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
export PYTHONPATH="$PWD/$build/python${PYTHONPATH:+:$PYTHONPATH}"
export NETTRIM_SANITIZED=1
python -c "import nettrim, sys; assert nettrim.__file__.startswith('$PWD/$build'), nettrim.__file__"
exec python -m pytest -m "not timing" -p no:cacheprovider "$@"
