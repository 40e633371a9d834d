"""The cost of method='auto''s FFT safeguard on the runner's filtering cases.

'auto' checks the data before it trusts the FFT (finite values, no overflow,
a dynamic range the transform's precision can carry; see
``cyconv._fft.auto_fft_dtype``). This times ``correlate2d(method='auto')`` with
that check and, in the same process and interleaved, with the check replaced
by the one it replaced (FFT whenever the cost model prefers it and the data are
finite), on the filtering group's cases of ``benchmarks/run.py``:

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/fft_safeguard.py

Prints each case's median times and their ratio (with / without).
"""
import statistics
import sys
import time

import numpy as np

import cyconv
from cyconv import _signal


def unchecked(image, kernel):
    """'auto' before the safeguard: the data's own dtype whenever the FFT applies."""
    return image.dtype if _signal.fft_applies(image, kernel) else None


def timed(fn, number):
    t0 = time.perf_counter()
    for _ in range(number):
        fn()
    return (time.perf_counter() - t0) / number


def main(rounds=15, size=1024):
    checked = _signal.auto_fft_dtype
    rng = np.random.default_rng(1)
    print(f"{'case':<32} {'with check':>11} {'without':>11} {'ratio':>6}")
    ratios = []
    for dtype in (np.float32, np.float64):
        for mode in ("same", "valid"):
            for k in (3, 5, 9, 15, 31):
                image = rng.standard_normal((size, size)).astype(dtype)
                kernel = rng.standard_normal((k, k)).astype(dtype)

                def call():
                    return cyconv.correlate2d(image, kernel, mode)
                number = max(1, int(0.02 / max(timed(call, 1), 1e-6)))
                with_, without = [], []
                for _ in range(rounds):  # interleaved, so drift hits both alike
                    _signal.auto_fft_dtype = checked
                    with_.append(timed(call, number))
                    _signal.auto_fft_dtype = unchecked
                    without.append(timed(call, number))
                _signal.auto_fft_dtype = checked
                a, b = statistics.median(with_), statistics.median(without)
                ratios.append(a / b)
                case = f"{size}^2 {k}x{k} {np.dtype(dtype).name} {mode}"
                print(f"{case:<32} {a * 1e3:9.3f}ms {b * 1e3:9.3f}ms {a / b:6.3f}", flush=True)
    print(f"ratio with/without: median {statistics.median(ratios):.3f}, "
          f"max {max(ratios):.3f}")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:]))
