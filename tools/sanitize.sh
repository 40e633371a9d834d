#!/usr/bin/env bash
# Build cyconv with AddressSanitizer + UndefinedBehaviorSanitizer and Cython's
# bounds checks (meson option debug_checks), then run the test suite under them.
#
#   tools/sanitize.sh                  # the whole suite
#   tools/sanitize.sh tests/test_properties.py -x   # arguments go to pytest
#
# The build happens in a throwaway virtual environment that sees the system's
# site-packages and adds what is missing of the build and test requirements
# (from PyPI); SANITIZE_DIR keeps it somewhere else than a temporary
# directory (and then keeps it afterwards). The run fails on the first sanitizer
# report: UBSan halts, ASan aborts, and this script also greps the log for both.
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
work=${SANITIZE_DIR:-$(mktemp -d -t cyconv-sanitize.XXXXXX)}
if [[ -z "${SANITIZE_DIR:-}" ]]; then
    trap 'rm -rf "$work"' EXIT
fi
log="$work/pytest.log"

"$python" -m venv --system-site-packages "$work/venv"
# The build requirements (pyproject.toml), installed here because the build
# runs without isolation; what the system already has is not fetched again.
"$work/venv/bin/python" -m pip install --quiet \
    "meson-python>=0.16" "cython>=3.1" "numpy>=2.0" "scipy>=1.13" ninja
"$work/venv/bin/python" -m pip install --quiet --no-build-isolation \
    -Csetup-args=-Db_sanitize=address,undefined \
    -Csetup-args=-Ddebug_checks=true \
    -Cbuild-dir="$work/build" ".[test]"

# Python itself is not built with ASan: its runtime must be loaded first. So
# must libstdc++, or ASan's __cxa_throw interceptor finds no real function
# when a C++ extension (matplotlib's ft2font, imported by an example) throws.
libasan=$(gcc -print-file-name=libasan.so)
libstdcxx=$(gcc -print-file-name=libstdc++.so)
if [[ ! -e "$libasan" || ! -e "$libstdcxx" ]]; then
    echo "sanitize: gcc has no libasan.so or libstdc++.so" >&2
    exit 1
fi

# detect_leaks=0: CPython leaks by design at exit. The suite's RSS leak check
# skips itself under ASan (its quarantine holds freed memory).
status=0
env LD_PRELOAD="$libasan $libstdcxx" \
    ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 \
    UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    CYCONV_SANITIZE=1 \
    "$work/venv/bin/python" -m pytest -p no:cacheprovider -q "$@" 2>&1 | tee "$log" \
    || status=$?

reports=$(grep -c -E 'ERROR: AddressSanitizer|runtime error' "$log" || true)
echo "sanitize: pytest exit status $status, sanitizer reports: $reports"
if [[ $status -ne 0 || $reports -ne 0 ]]; then
    exit 1
fi
