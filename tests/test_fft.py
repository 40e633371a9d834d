"""method='fft' against scipy.signal, the direct loops and the NumPy reference.

An FFT's rounding error does not scale with each output's own terms but
with the whole input: every entry carries about ``eps * sum|x| * max|k|``,
where ``x`` is the image as far as the boundary extends it. The comparisons
allow 16 times that (measured worst cases stay below 2).
"""
import os
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import scipy.signal
from numpy.testing import assert_array_equal

import cyconv
from cyconv import _fft, _openmp

from _reference import conv2d_api_ref

NAMES = ("correlate2d", "convolve2d")
MODES = ("full", "same", "valid")
FFT_DTYPES = ("float32", "float64", "complex64", "complex128")
# boundary -> numpy.pad mode, written out here for the reference extension.
NP_BOUNDARY = {"fill": "constant", "wrap": "wrap", "symm": "symmetric"}
BOUNDARIES = [("fill", 0), ("fill", 2.5), ("wrap", 0), ("symm", 0)]

IMAGE = (23, 17)
# Odd, even, non-square, 1x1, 31x31, and larger than the image in one or
# both dimensions (wrap and symm then go round more than once).
KERNELS = ((1, 1), (3, 3), (4, 4), (2, 5), (6, 3), (11, 11), (31, 31), (30, 9), (7, 26))


def _random(rng, shape, dtype):
    dtype = np.dtype(dtype)
    values = rng.standard_normal(shape)
    if dtype.kind == "c":
        values = values + 1j * rng.standard_normal(shape)
    return values.astype(dtype)


def _valid_ok(shape1, shape2):
    return (all(a >= b for a, b in zip(shape1, shape2))
            or all(b >= a for a, b in zip(shape1, shape2)))


def _fft_bound(in1, in2, mode, boundary, fillvalue):
    """16 * eps * sum|x| * max|k|, ``x`` the image extended as far as the kernel reaches."""
    if mode == "valid":  # no boundary; the larger array is the image
        image, kernel = (in1, in2) if in1.size >= in2.size else (in2, in1)
    else:
        kernel = in2
        kh, kw = in2.shape
        extra = {"constant_values": fillvalue} if boundary == "fill" else {}
        image = np.pad(in1, ((kh - 1, kh - 1), (kw - 1, kw - 1)), mode=NP_BOUNDARY[boundary],
                       **extra)
    eps = np.finfo(np.result_type(in1, in2)).eps
    return 16 * eps * np.abs(image).sum() * np.abs(kernel).max()


def _check_fft(name, in1, in2, mode="full", boundary="fill", fillvalue=0):
    """fft equals SciPy and the direct loops to FFT rounding; returns the result."""
    before = (in1.copy(), in2.copy())
    got = getattr(cyconv, name)(in1, in2, mode, boundary, fillvalue, method="fft")
    expected = getattr(scipy.signal, name)(in1, in2, mode, boundary, fillvalue)
    direct = getattr(cyconv, name)(in1, in2, mode, boundary, fillvalue, method="direct")
    assert got.dtype == expected.dtype == direct.dtype
    assert got.shape == expected.shape
    assert got.flags.c_contiguous
    assert not np.shares_memory(got, in1) and not np.shares_memory(got, in2)
    bound = _fft_bound(in1, in2, mode, boundary, fillvalue)
    assert np.abs(got - expected).max(initial=0) <= bound
    assert np.abs(got - direct).max(initial=0) <= bound
    assert_array_equal(in1, before[0])
    assert_array_equal(in2, before[1])
    return got


@pytest.mark.parametrize("dtype", FFT_DTYPES)
@pytest.mark.parametrize("boundary, fillvalue", BOUNDARIES)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", NAMES)
def test_matches_scipy_and_direct(name, mode, boundary, fillvalue, dtype):
    rng = np.random.default_rng(0)
    image = _random(rng, IMAGE, dtype)
    for shape in KERNELS:
        kernel = _random(rng, shape, dtype)
        if mode != "valid" or _valid_ok(IMAGE, shape):
            _check_fft(name, image, kernel, mode, boundary, fillvalue)
        if mode != "valid" or _valid_ok(shape, IMAGE):
            # The image as the smaller argument: 'valid' swaps, the others do not.
            _check_fft(name, kernel, image, mode, boundary, fillvalue)


@pytest.mark.parametrize("name", NAMES)
def test_fft_is_not_the_direct_sum(name):
    """The FFT path really runs: its rounding differs from the direct loops'."""
    rng = np.random.default_rng(1)
    image, kernel = _random(rng, (40, 40), np.float64), _random(rng, (9, 9), np.float64)
    got = _check_fft(name, image, kernel, "same")
    direct = getattr(cyconv, name)(image, kernel, "same", method="direct")
    assert not np.array_equal(got, direct)
    # Huge but finite values (their squares overflow) still take the FFT.
    got = _check_fft(name, image, 1e200 * kernel, "same")
    assert not np.array_equal(got, getattr(cyconv, name)(image, 1e200 * kernel, "same",
                                                         method="direct"))


@pytest.mark.parametrize("name", NAMES)
def test_mixed_dtypes(name):
    """The common dtype is SciPy's; float32 with complex64 stays single precision."""
    rng = np.random.default_rng(2)
    for first, second in (("float32", "complex64"), ("float32", "float64"),
                          ("int16", "float32"), ("int64", "complex128")):
        image = _random(rng, (9, 8), np.float64)
        image = image.astype(first) if first[0] != "i" else (10 * image).astype(first)
        kernel = _random(rng, (4, 3), second)
        for mode in MODES:
            _check_fft(name, image, kernel, mode)
            _check_fft(name, kernel, image, mode)


@pytest.mark.parametrize("name", NAMES)
def test_memory_layouts(name, layout):
    """Any layout gives exactly the result of the C-contiguous copies."""
    rng = np.random.default_rng(3)
    for dtype in ("float32", "complex128"):
        image, kernel = _random(rng, (12, 10), dtype), _random(rng, (5, 4), dtype)
        for mode, boundary in (("full", "fill"), ("same", "wrap"), ("valid", "symm")):
            func = getattr(cyconv, name)
            expected = func(image, kernel, mode, boundary, 2, method="fft")
            for in1, in2 in ((layout(image), kernel), (image, layout(kernel)),
                             (layout(image), layout(kernel))):
                got = func(in1, in2, mode, boundary, 2, method="fft")
                assert got.flags.c_contiguous
                assert_array_equal(got, expected)
            _check_fft(name, layout(image), layout(kernel), mode, boundary, 2)


INTS = ("int8", "uint8", "int32", "uint32", "int64", "uint64")


@pytest.mark.parametrize("dtype", INTS)
@pytest.mark.parametrize("name", NAMES)
def test_integers_stay_exact(name, dtype):
    """Integers never go through the FFT: SciPy's exact, wrapping results and dtype."""
    rng = np.random.default_rng(4)
    info = np.iinfo(dtype)
    image = rng.integers(info.min, info.max, (70, 68), dtype=dtype, endpoint=True)
    kernel = rng.integers(info.min, info.max, (12, 11), dtype=dtype, endpoint=True)
    for mode in MODES:
        for boundary, fillvalue in (("fill", 0), ("fill", 3), ("wrap", 0)):
            expected = getattr(scipy.signal, name)(image, kernel, mode, boundary, fillvalue)
            # 'full' and 'same' are large enough for 'auto' to pick fft for floats.
            for method in ("fft", "auto"):
                got = getattr(cyconv, name)(image, kernel, mode, boundary, fillvalue,
                                            method=method)
                assert got.dtype == expected.dtype == np.dtype(dtype)
                assert_array_equal(got, expected)


@pytest.mark.parametrize("name", NAMES)
def test_long_double_runs_direct(name):
    rng = np.random.default_rng(5)
    for dtype in ("longdouble", "clongdouble"):
        image, kernel = _random(rng, (15, 14), dtype), _random(rng, (12, 12), dtype)
        for mode in MODES:
            got = getattr(cyconv, name)(image, kernel, mode, method="fft")
            direct = getattr(cyconv, name)(image, kernel, mode, method="direct")
            assert got.dtype == np.dtype(dtype)
            assert_array_equal(got, direct)


@pytest.mark.parametrize("name", NAMES)
def test_non_finite_inputs_fall_back_to_direct(name):
    """NaN and inf stay where the direct sum (and SciPy) put them."""
    rng = np.random.default_rng(6)
    # Large enough for 'auto' to pick fft in 'full' and 'same' mode if all were finite.
    image, kernel = _random(rng, (80, 70), np.float64), _random(rng, (10, 11), np.float64)
    bad_image, bad_kernel = image.copy(), kernel.copy()
    bad_image[3, 4] = np.nan
    bad_image[30, 2] = np.inf
    bad_kernel[0, 5] = -np.inf
    cases = [(bad_image, kernel, 0), (image, bad_kernel, 0), (image, kernel, np.nan),
             (bad_image.astype(np.complex64), kernel.astype(np.complex64), 0)]
    for in1, in2, fillvalue in cases:
        # 'valid' reads no fill value: there a NaN fill leaves the FFT on.
        for mode in MODES if fillvalue == 0 else ("full", "same"):
            func = getattr(cyconv, name)
            expected = getattr(scipy.signal, name)(in1, in2, mode, "fill", fillvalue)
            direct = func(in1, in2, mode, "fill", fillvalue, method="direct")
            for method in ("fft", "auto"):
                got = func(in1, in2, mode, "fill", fillvalue, method=method)
                assert_array_equal(got, direct)  # NaN in the same places
                assert_array_equal(np.isnan(got), np.isnan(expected))
                assert_array_equal(np.isinf(got), np.isinf(expected))
            if in1 is bad_image:  # NaN and inf reach only some outputs
                assert np.isfinite(direct).any() and not np.isfinite(direct).all()


@pytest.mark.parametrize("name", NAMES)
def test_auto_follows_the_cost_model(name):
    """'auto' runs 'fft' only where the direct sum costs clearly more."""
    rng = np.random.default_rng(7)
    func = getattr(cyconv, name)
    small, large = _random(rng, (80, 80), np.float64), _random(rng, (256, 256), np.float64)
    # Few taps, or few outputs: direct. 65536 outputs * 1681 taps: FFT.
    for image, shape, mode, chosen in ((small, (3, 3), "same", "direct"),
                                       (small, (10, 10), "same", "direct"),
                                       (small, (75, 75), "valid", "direct"),
                                       (large, (41, 41), "same", "fft"),
                                       (large.astype(np.float32), (41, 41), "same", "fft")):
        kernel = _random(rng, shape, image.dtype)
        other = "direct" if chosen == "fft" else "fft"
        auto = func(image, kernel, mode, method="auto")
        assert_array_equal(auto, func(image, kernel, mode, method=chosen))
        # The two methods differ in the last bits here, so the check above tells them apart.
        assert not np.array_equal(auto, func(image, kernel, mode, method=other))


@pytest.mark.parametrize("name", NAMES)
def test_empty_inputs(name):
    for shape1, shape2 in (((0, 3), (2, 2)), ((3, 3), (2, 0)), ((0, 3), (1, 2)),
                           ((2, 2), (0, 0))):
        in1, in2 = np.ones(shape1), np.ones(shape2)
        for mode in MODES if _valid_ok(shape1, shape2) else ("full", "same"):
            expected = getattr(scipy.signal, name)(in1, in2, mode, fillvalue=2)
            got = getattr(cyconv, name)(in1, in2, mode, fillvalue=2, method="fft")
            assert got.dtype == expected.dtype and got.shape == expected.shape
            assert_array_equal(got, expected)


# ------------------------------------------------------------ tiled transforms
# Large inputs are cut into overlap-save tiles (see _fft._axis). The tests
# force tiles of a given transform length on small inputs: `forced_tiles`
# replaces the cost model's choice with that length on every axis where it
# gives more than one tile (elsewhere the axis stays one tile, as it must
# when the kernel does not fit in the tile).

@pytest.fixture
def forced_tiles(monkeypatch):
    """``force(length)``: later FFT calls use tiles of that transform length."""
    tiled = []

    def force(length):
        def choices(size, k, before, step, count, real, itemsize):
            axis = _fft._axis(size, k, before, step, count, real, length)
            tiled.append(axis is not None)
            return (_fft._axis(size, k, before, step, count, real) if axis is None else axis,)
        monkeypatch.setattr(_fft, "_axis_choices", choices)
        monkeypatch.setattr(_fft, "_best_plan", _fft._best_plan.__wrapped__)  # uncached
        return tiled
    return force


@pytest.mark.parametrize("length", [5, 8, 12])
@pytest.mark.parametrize("dtype", FFT_DTYPES)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", NAMES)
def test_tiles_match_scipy_and_direct(name, mode, dtype, length, forced_tiles):
    """Tiles that do not divide the image, kernels longer than a tile, every boundary."""
    tiled = forced_tiles(length)
    rng = np.random.default_rng(11)
    image = _random(rng, (37, 29), dtype)
    for shape in ((3, 3), (4, 2), (1, 6), (7, 9), (13, 3)):
        kernel = _random(rng, shape, dtype)
        for boundary, fillvalue in BOUNDARIES:
            _check_fft(name, image, kernel, mode, boundary, fillvalue)
    assert any(tiled) and not all(tiled)


@pytest.mark.parametrize("length", [9, 12, 16])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("kwargs", [
    dict(stride=(2, 3)),
    dict(dilation=(2, 3), padding=(3, 1)),
    dict(stride=(3, 2), dilation=(1, 2), padding=4),
    dict(padding="same", dilation=(2, 1)),
    dict(stride=5, padding=(7, 0)),
], ids=["stride", "dilation", "stride-dilation", "same", "stride-over-tile"])
def test_tiles_conv2d_strides_dilation_batches(kwargs, dtype, length, forced_tiles):
    """conv2d(method='fft') on a batch: strides and dilation cut into tiles."""
    tiled = forced_tiles(length)
    rng = np.random.default_rng(12)
    x = rng.standard_normal((3, 1, 31, 26)).astype(dtype)
    w = rng.standard_normal((1, 1, 4, 3)).astype(dtype)
    for bias in (None, np.array([-0.75], dtype)):
        got = cyconv.conv2d(x, w, bias, method="fft", **kwargs)
        ref = conv2d_api_ref(x, w, bias, **kwargs)
        assert got.dtype == np.dtype(dtype) and got.shape == ref.shape
        assert np.abs(got - ref).max() <= _conv_bound(x, w, bias, dtype)
        assert np.abs(got - cyconv.conv2d(x, w, bias, method="direct", **kwargs)).max() <= (
            _conv_bound(x, w, bias, dtype))
    assert any(tiled)


@pytest.mark.parametrize("dtype, spectrum", [("float32", "complex64"),
                                              ("float64", "complex128"),
                                              ("complex64", "complex64")])
def test_transforms_in_the_input_precision(dtype, spectrum, forced_tiles, monkeypatch):
    """float32 is transformed in single precision (and stays float32), tiles or not."""
    seen = []

    class Spy:
        def __getattr__(self, name):
            function = getattr(scipy.fft, name)
            if name == "next_fast_len":
                return function
            return lambda *args, **kwargs: seen.append(function(*args, **kwargs)) or seen[-1]
    monkeypatch.setattr(_fft, "sp_fft", Spy())
    rng = np.random.default_rng(14)
    image, kernel = _random(rng, (40, 30), dtype), _random(rng, (5, 4), dtype)
    for length in (None, 12):
        if length:
            forced_tiles(length)
        seen.clear()
        got = cyconv.correlate2d(image, kernel, "same", method="fft")
        assert got.dtype == np.dtype(dtype)
        assert seen and {a.dtype for a in seen} <= {np.dtype(spectrum), np.dtype(dtype)}
        assert np.dtype(spectrum) in {a.dtype for a in seen}
        _check_fft("correlate2d", image, kernel, "same")


@pytest.mark.skipif(not _openmp.openmp_enabled(), reason="built without OpenMP")
def test_tiles_run_on_the_kernel_threads(forced_tiles, monkeypatch):
    """No more threads than OpenMP's count; the same bits whatever the count."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    forced_tiles(16)
    pools = []
    submit = _fft._submit
    monkeypatch.setattr(_fft, "_submit", lambda workers, function: pools.append(workers)
                        or submit(workers, function))
    rng = np.random.default_rng(13)
    image, kernel = rng.standard_normal((2, 1, 150, 130)), rng.standard_normal((1, 1, 5, 7))
    results = {}
    for threads in (1, 2, 3):
        pools.clear()
        with threadpoolctl.threadpool_limits(limits=threads, user_api="openmp"):
            results[threads] = cyconv.conv2d(image, kernel, padding=2, method="fft")
        # The calling thread works too: threads - 1 more from the pool (the
        # count capped at the usable CPUs).
        used = min(threads, _openmp.cpu_limit())
        assert set(pools) == ({used - 1} if used > 1 else set())
    assert_array_equal(results[1], results[2])
    assert_array_equal(results[1], results[3])
    assert np.abs(results[1] - conv2d_api_ref(image, kernel, padding=2)).max() <= _conv_bound(
        image, kernel, None, "float64")


def test_tiles_from_many_threads(forced_tiles):
    """Calls from several Python threads share the pool and match serial calls."""
    forced_tiles(16)
    rng = np.random.default_rng(15)
    jobs = [(rng.standard_normal((200, 180 + 7 * i)), rng.standard_normal((3 + i, 5)))
            for i in range(6)]
    serial = [cyconv.correlate2d(x, w, "same", method="fft") for x, w in jobs]
    with ThreadPoolExecutor(6) as pool:
        for _ in range(3):
            got = list(pool.map(lambda job: cyconv.correlate2d(*job, "same", method="fft"),
                                jobs))
            for a, b in zip(got, serial):
                assert_array_equal(a, b)
    for (x, w), result in zip(jobs, serial):
        assert np.abs(result - scipy.signal.correlate2d(x, w, "same")).max() <= _fft_bound(
            x, w, "same", "fill", 0)


def test_tiles_after_fork():
    """A child forked after the thread pool started gets a pool of its own.

    The parent's pool has no threads in the child: work sent there would never run.
    """
    if not hasattr(os, "fork"):
        pytest.skip("no fork")
    code = textwrap.dedent("""
        import os, numpy as np, cyconv
        from cyconv import _fft
        _fft._axis_choices = lambda *a: (_fft._axis(*a[:-1], 16),)
        _fft._best_plan = _fft._best_plan.__wrapped__
        x, w = np.ones((300, 260)), np.ones((5, 5))
        first = cyconv.correlate2d(x, w, method="fft")
        assert _fft._pool is not None
        pid = os.fork()
        if pid == 0:
            fresh = _fft._pool is None
            again = cyconv.correlate2d(x, w, method="fft")
            os._exit(0 if fresh and np.array_equal(again, first) else 1)
        assert os.waitpid(pid, 0)[1] == 0
        print(round(first.max()))
    """)
    env = dict(os.environ, OMP_NUM_THREADS="2")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=120, check=True).stdout
    assert out.strip() == "25"


# ---------------------------------------------------------------- conv2d

CONV_CASES = [
    pytest.param((9, 8), (3, 3), {}, id="plain"),
    pytest.param((9, 8), (4, 2), dict(stride=(2, 3)), id="stride"),
    pytest.param((11, 10), (3, 2), dict(dilation=(2, 3)), id="dilation"),
    pytest.param((11, 10), (3, 4), dict(dilation=(3, 1), stride=2, padding=(2, 1)),
                 id="dilation-stride-pad"),
    pytest.param((7, 9), (4, 3), dict(padding="same"), id="same-even"),
    pytest.param((7, 9), (2, 3), dict(padding="same", dilation=(3, 2)), id="same-dilated"),
    pytest.param((6, 5), (3, 3), dict(padding="valid"), id="valid"),
    pytest.param((3, 4), (2, 2), dict(padding=3, stride=2), id="pad-over-kernel"),
    pytest.param((4, 5), (6, 7), dict(padding=3), id="kernel-larger-than-image"),
    pytest.param((5, 5), (1, 1), dict(stride=3), id="1x1-stride"),
    pytest.param((20, 18), (11, 12), dict(padding=(5, 6), stride=(1, 2)), id="large-kernel"),
]
PAD_MODES = ("zeros", "reflect", "replicate", "circular")


def _conv_data(rng, shape, ndim, dtype):
    """An (H, W) plane as a 2-D, 3-D (1, H, W) or 4-D (2, 1, H, W) input."""
    x = rng.standard_normal(shape).astype(dtype)
    return {2: x, 3: x[None], 4: np.stack([x, -2 * x])[:, None]}[ndim]


def _conv_bound(x, w, bias, dtype):
    """16 * eps * (max|x| * sum|w| + |bias|), in the result's precision."""
    bias = 0 if bias is None else np.abs(bias).max()
    return 16 * np.finfo(dtype).eps * (np.abs(x).max() * np.abs(w).sum() + bias)


@pytest.mark.parametrize("padding_mode", PAD_MODES)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("ndim", [2, 3, 4])
@pytest.mark.parametrize("xs, ws, kwargs", CONV_CASES)
def test_conv2d_single_channel(xs, ws, kwargs, ndim, dtype, padding_mode):
    rng = np.random.default_rng(8)
    x = _conv_data(rng, xs, ndim, dtype)
    w = rng.standard_normal(ws).astype(dtype)
    w = w if ndim == 2 else w[None, None]
    kwargs = dict(kwargs, padding_mode=padding_mode)
    # A Python scalar bias (2-D only) does not upcast float32; an array is cast.
    for bias in (None, np.array([1.25], dtype)) + ((1.25,) if ndim == 2 else ()):
        pad = kwargs.get("padding", 0)
        if padding_mode == "reflect" and isinstance(pad, int) and pad >= min(xs):
            # PyTorch's limit, pad < size, is checked before any method runs.
            with pytest.raises(ValueError, match="padding_mode='reflect' needs padding <"):
                cyconv.conv2d(x, w, bias, method="fft", **kwargs)
            return
        ref = conv2d_api_ref(x, w, bias, **kwargs)
        before = (x.copy(), w.copy())
        got = cyconv.conv2d(x, w, bias, method="fft", **kwargs)
        assert got.dtype == np.dtype(dtype)  # float32 stays float32
        assert got.shape == ref.shape
        assert got.flags.c_contiguous
        assert np.abs(got - ref).max() <= _conv_bound(x, w, bias, dtype)
        direct = cyconv.conv2d(x, w, bias, method="direct", **kwargs)
        assert np.abs(got - direct).max() <= _conv_bound(x, w, bias, dtype)
        assert_array_equal(x, before[0])
        assert_array_equal(w, before[1])


def test_conv2d_exercise():
    """The course exercise's hand-computed stride-2 result, by FFT."""
    image = np.array([[1, 1, -2, 0, 1], [1, 0, 0, 2, 1], [0, 1, 0, 5, -1],
                      [-2, 1, 0, -1, 1], [0, 1, 0, 5, -1]], dtype=float)
    kernel = np.array([[0, 1, 1], [1, 0, 0], [0, 1, 0]], dtype=float)
    got = cyconv.conv2d(image, kernel, stride=2, method="fft")
    np.testing.assert_allclose(got, [[1, 6], [0, 9]], atol=1e-12)


def test_conv2d_layouts(layout):
    rng = np.random.default_rng(9)
    x, w = rng.standard_normal((2, 1, 9, 8)), rng.standard_normal((1, 1, 4, 3))
    kwargs = dict(stride=2, padding=(1, 2), dilation=(1, 2))
    expected = cyconv.conv2d(x, w, [0.5], method="fft", **kwargs)
    for args in ((layout(x), w), (x, layout(w)), (layout(x), layout(w))):
        got = cyconv.conv2d(*args, [0.5], method="fft", **kwargs)
        assert got.flags.c_contiguous
        assert_array_equal(got, expected)


def test_conv2d_integers_and_non_finite_run_direct():
    """Integer data stays exact; NaN and inf stay in their windows."""
    rng = np.random.default_rng(10)
    ints = rng.integers(-2**20, 2**20, (13, 12)), rng.integers(-2**20, 2**20, (12, 11))
    floats = rng.standard_normal((13, 12)), rng.standard_normal((12, 11))
    floats[0][6, 6] = np.nan
    floats[1][0, 0] = np.inf
    for x, w in (ints, floats, (floats[0], ints[1])):
        for kwargs in ({}, dict(padding=4, stride=(2, 1)), dict(padding="same")):
            got = cyconv.conv2d(x, w, method="fft", **kwargs)
            assert_array_equal(got, cyconv.conv2d(x, w, method="direct", **kwargs))
            if x is ints[0]:
                assert_array_equal(got, conv2d_api_ref(x, w, **kwargs))  # exact


def test_conv2d_empty():
    # No images; an all-padding input: every output is the bias.
    assert cyconv.conv2d(np.ones((0, 1, 5, 5)), np.ones((1, 1, 3, 3)),
                         method="fft").shape == (0, 1, 3, 3)
    got = cyconv.conv2d(np.ones((1, 0, 3)), np.ones((1, 1, 1, 1)), [2.0], padding=1,
                        method="fft")
    assert_array_equal(got, np.full((1, 2, 5), 2.0))


@pytest.mark.parametrize("xs, ws, groups", [
    ((1, 2, 6, 6), (1, 2, 3, 3), 1),
    ((1, 1, 6, 6), (2, 1, 3, 3), 1),
    ((2, 6, 6), (2, 1, 3, 3), 2),
    ((1, 1, 6, 6), (0, 1, 3, 3), 1),
])
def test_conv2d_fft_needs_one_channel_one_kernel(xs, ws, groups):
    x, w = np.ones(xs), np.ones(ws)
    with pytest.raises(ValueError, match=r"method='fft' needs a single input channel "
                                         r"and a single kernel.*" + str(ws).replace("(", r"\(")
                       .replace(")", r"\)")):
        cyconv.conv2d(x, w, groups=groups, method="fft")


def test_backward_has_no_fft():
    x, w = np.ones((5, 5)), np.ones((3, 3))
    with pytest.raises(ValueError, match="method"):
        cyconv.conv2d_backward(np.ones((3, 3)), x, w, method="fft")


# ------------------------------------------------- small calls: the short paths
# The common arguments skip parts of the checks (exact strings, plain ints,
# ndarray shapes, a cached conv2d geometry); everything else must still be
# checked as before, also right after the same values passed as plain ints.

def test_cached_geometry_still_rejects_look_alikes():
    x, w = np.ones((6, 6)), np.ones((2, 2))
    expected = conv2d_api_ref(x, w, stride=2, padding=1)
    assert_array_equal(cyconv.conv2d(x, w, stride=2, padding=1), expected)
    # Equal-hashing look-alikes of the cached 2 and 1 are still refused...
    for kwargs in (dict(stride=2.0, padding=1), dict(stride=2, padding=True),
                   dict(stride=2, padding=1.0), dict(stride=2, padding=1, groups=True)):
        with pytest.raises(TypeError, match="must be an int"):
            cyconv.conv2d(x, w, **kwargs)
    # ... and accepted integer types give the same result.
    for kwargs in (dict(stride=np.int64(2), padding=1), dict(stride=(2, 2), padding=[1, 1]),
                   dict(stride=2, padding=np.array(1))):
        assert_array_equal(cyconv.conv2d(x, w, **kwargs), expected)
    with pytest.raises(ValueError, match="stride must be >= 1"):
        cyconv.conv2d(x, w, stride=0)


@pytest.mark.parametrize("name", NAMES)
def test_string_subclasses_still_accepted(name):
    """SciPy looks the names up in a dict: numpy string scalars work there too."""
    image, kernel = np.arange(12.0).reshape(3, 4), np.array([[1.0, -2.0], [0.5, 3.0]])
    func = getattr(cyconv, name)
    expected = getattr(scipy.signal, name)(image, kernel, "same", "wrap")
    got = func(image, kernel, np.str_("same"), np.str_("wrap"), method=np.str_("direct"))
    assert_array_equal(got, expected)
    with pytest.raises(ValueError, match="boundary"):
        func(image, kernel, boundary="Fill")
