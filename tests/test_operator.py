"""conv_operator and conv_matrix: convolution as a linear map.

References: the NumPy sum of tests/_reference.py for the forward map, the
adjoint identity <A x, y> == <x, A^T y> for the transpose, the explicit
matrix against the operator (column by column through the identity), and the
exercise's hand numbers.
"""
import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse
from numpy.testing import assert_allclose, assert_array_equal
from scipy.sparse.linalg import LinearOperator

import cyconv

from _reference import NP_PAD_MODE, TOL, conv2d_ref, ref_pads

FLOATS = (np.float32, np.float64)
MODES = ("zeros", "reflect", "replicate", "circular")

# (input shape, weight shape, parameters): 2-D, 3-D and 4-D inputs.
CASES = [
    pytest.param((5, 5), (3, 3), dict(stride=2), id="exercise"),
    pytest.param((7, 6), (3, 2), dict(padding=(1, 2), dilation=(2, 1)), id="2d-pad-dilation"),
    pytest.param((6, 7), (2, 4), dict(padding="same"), id="2d-same-even"),
    pytest.param((6, 5), (3, 3), dict(padding=2, padding_mode="reflect"), id="2d-reflect"),
    pytest.param((5, 6), (2, 3), dict(padding="same", padding_mode="circular"),
                 id="2d-same-circular"),
    pytest.param((4, 5), (3, 3), dict(padding=(3, 1), padding_mode="replicate", stride=2),
                 id="2d-replicate-wide"),
    pytest.param((3, 6, 5), (4, 3, 3, 2), dict(stride=(2, 1), padding=1), id="3d"),
    pytest.param((4, 6, 5), (6, 2, 3, 3), dict(groups=2, padding=(1, 0)), id="3d-groups"),
    pytest.param((3, 5, 6), (3, 1, 3, 3), dict(groups=3, padding="same",
                                               padding_mode="reflect"), id="3d-depthwise"),
    pytest.param((2, 2, 6, 7), (3, 2, 3, 2), dict(stride=(1, 2), padding=(2, 1),
                                                  dilation=(1, 2)), id="4d"),
    pytest.param((2, 4, 5, 5), (4, 2, 2, 2), dict(groups=2, padding="same",
                                                  padding_mode="circular"), id="4d-groups"),
    pytest.param((2, 2, 7, 6), (2, 2, 3, 3), dict(padding=2, dilation=2,
                                                  padding_mode="replicate"),
                 id="4d-dilated-replicate"),
    pytest.param((1, 1, 5, 4), (1, 1, 3, 3), dict(padding=(3, 0), stride=3), id="4d-pad-heavy"),
]


def _data(rng, shape, dtype):
    return rng.standard_normal(shape).astype(dtype)


def _ref_forward(x, w, input_shape, stride=1, padding=0, dilation=1, groups=1,
                 padding_mode="zeros"):
    """The NumPy reference conv2d on x.reshape(input_shape), flattened."""
    x4 = np.reshape(x, (1,) * (4 - len(input_shape)) + tuple(input_shape))
    w4 = np.reshape(w, (1,) * (4 - w.ndim) + w.shape)
    pair = lambda v: (v, v) if np.ndim(v) == 0 else tuple(v)  # noqa: E731
    out = conv2d_ref(x4, w4, None, pair(stride), ref_pads(padding, w4.shape[2:], pair(dilation)),
                     pair(dilation), groups, NP_PAD_MODE[padding_mode])
    return out.ravel()


def _sizes(xs, ws, kwargs):
    params = {k: v for k, v in kwargs.items() if k != "padding_mode"}
    return math.prod(cyconv.output_shape(xs, ws, **params)), math.prod(xs)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("xs, ws, kwargs", CASES)
def test_adjoint_identity(xs, ws, kwargs, dtype):
    rng = np.random.default_rng(0)
    w = _data(rng, ws, dtype)
    op = cyconv.conv_operator(w, xs, **kwargs)
    m, n = _sizes(xs, ws, kwargs)
    for _ in range(3):
        x, y = _data(rng, n, dtype), _data(rng, m, dtype)
        ax, aty = op @ x, op.T @ y
        assert ax.dtype == aty.dtype == dtype
        lhs, rhs = np.dot(ax.astype(np.float64), y), np.dot(x, aty.astype(np.float64))
        scale = np.linalg.norm(ax) * np.linalg.norm(y) + np.linalg.norm(x) * np.linalg.norm(aty)
        assert abs(lhs - rhs) <= TOL[np.dtype(dtype)]["rtol"] * scale


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("xs, ws, kwargs", CASES)
def test_forward_matches_reference(xs, ws, kwargs, dtype):
    rng = np.random.default_rng(1)
    w = _data(rng, ws, dtype)
    x = _data(rng, math.prod(xs), dtype)
    ref = _ref_forward(x, w, xs, **kwargs)
    for result in (cyconv.conv_operator(w, xs, **kwargs) @ x,
                   cyconv.conv_operator(w, xs, **kwargs).matvec(x),
                   cyconv.conv_matrix(w, xs, **kwargs) @ x):
        assert result.dtype == dtype
        assert_allclose(result, ref, **TOL[np.dtype(dtype)])
    # And conv2d itself, on the image-shaped array.
    out = cyconv.conv2d(x.reshape(xs), w, **kwargs)
    assert_allclose(cyconv.conv_matrix(w, xs, **kwargs) @ x, out.ravel(), **TOL[np.dtype(dtype)])


@pytest.mark.parametrize("xs, ws, kwargs", CASES)
def test_matrix_equals_operator(xs, ws, kwargs):
    # Column j of the operator is A @ e_j; row i of its adjoint is A.T @ e_i.
    rng = np.random.default_rng(2)
    w = _data(rng, ws, np.float64)
    op = cyconv.conv_operator(w, xs, **kwargs)
    mat = cyconv.conv_matrix(w, xs, **kwargs)
    m, n = _sizes(xs, ws, kwargs)
    assert isinstance(mat, scipy.sparse.csr_array)
    assert op.shape == mat.shape == (m, n)
    dense = mat.toarray()
    assert_allclose(op.matmat(np.eye(n)), dense, rtol=1e-12, atol=1e-12)
    assert_allclose(op.rmatmat(np.eye(m)), dense.T, rtol=1e-12, atol=1e-12)
    y = _data(rng, m, np.float64)
    assert_allclose(mat.T @ y, op.rmatvec(y), rtol=1e-12, atol=1e-12)
    # Each column is the reference convolution of a unit image.
    for j in rng.choice(n, size=min(n, 5), replace=False):
        assert_allclose(dense[:, j], _ref_forward(np.eye(n)[j], w, xs, **kwargs), atol=1e-12)


@pytest.mark.parametrize("xs, ws, kwargs", [CASES[3], CASES[7], CASES[10]])
def test_matmat_batches_columns(xs, ws, kwargs):
    rng = np.random.default_rng(3)
    op = cyconv.conv_operator(_data(rng, ws, np.float64), xs, **kwargs)
    m, n = op.shape
    xs_, ys = _data(rng, (n, 4), np.float64), _data(rng, (m, 4), np.float64)
    assert_allclose(op @ xs_, np.stack([op @ c for c in xs_.T], axis=1), rtol=1e-12, atol=1e-12)
    assert_allclose(op.T @ ys, np.stack([op.T @ c for c in ys.T], axis=1),
                    rtol=1e-12, atol=1e-12)
    # A column vector (n, 1) gives a column vector back, as LinearOperator does.
    assert (op @ xs_[:, :1]).shape == (m, 1)


def test_dtypes():
    w = np.arange(6.0).reshape(2, 3)
    for wdtype, expected in ((np.float32, np.float32), (np.float64, np.float64),
                             (np.int64, np.float64), (np.bool_, np.float64)):
        op = cyconv.conv_operator(w.astype(wdtype), (4, 5))
        mat = cyconv.conv_matrix(w.astype(wdtype), (4, 5))
        assert op.dtype == expected and mat.dtype == expected
        assert isinstance(op, LinearOperator)
    op32 = cyconv.conv_operator(w.astype(np.float32), (4, 5))
    assert (op32 @ np.ones(20, np.float32)).dtype == np.float32
    assert (op32.T @ np.ones(9, np.float32)).dtype == np.float32
    # A float64 vector is float64 (mixed precision gives float64, as conv2d).
    assert (op32 @ np.ones(20)).dtype == np.float64


def test_complex_vectors_by_linearity():
    rng = np.random.default_rng(4)
    op = cyconv.conv_operator(rng.standard_normal((3, 2, 3, 3)), (2, 5, 6), padding=1)
    m, n = op.shape
    x, z = rng.standard_normal(n), rng.standard_normal(n)
    assert_allclose(op @ (x + 1j * z), (op @ x) + 1j * (op @ z), rtol=1e-12)
    y, v = rng.standard_normal(m), rng.standard_normal(m)
    assert_allclose(op.H @ (y + 1j * v), (op.T @ y) + 1j * (op.T @ v), rtol=1e-12)


def test_weight_read_once():
    w = np.ones((2, 2))
    op, mat = cyconv.conv_operator(w, (3, 3)), cyconv.conv_matrix(w, (3, 3))
    w[...] = 5  # later changes to the caller's array do not reach the operator
    x = np.arange(9.0)
    assert_array_equal(op @ x, [8, 12, 20, 24])
    assert_array_equal(mat @ x, [8, 12, 20, 24])


def test_padding_modes_sum_repeated_cells():
    # A 1x3 row [a b c] with padding 1 and a 1x3 kernel of ones: each output
    # is the sum of its padded window, so a cell copied into the padding
    # counts twice in the border rows.
    expected = {"zeros": [[1, 1, 0], [1, 1, 1], [0, 1, 1]],
                "reflect": [[1, 2, 0], [1, 1, 1], [0, 2, 1]],
                "replicate": [[2, 1, 0], [1, 1, 1], [0, 1, 2]],
                "circular": [[1, 1, 1], [1, 1, 1], [1, 1, 1]]}
    for mode, rows in expected.items():
        mat = cyconv.conv_matrix(np.ones((1, 3)), (1, 3), padding=(0, 1), padding_mode=mode)
        assert_array_equal(mat.toarray(), rows)


def test_zero_taps_not_stored():
    k = np.array([[0, 1, 1], [1, 0, 0], [0, 1, 0]])
    assert cyconv.conv_matrix(k, (5, 5), stride=2).nnz == 4 * 4
    assert cyconv.conv_matrix(np.zeros((3, 3)), (5, 5)).nnz == 0


def test_exercise_matrix():
    # The exercise: (I * K) with stride 2 as a 4x25 matrix times the
    # flattened image; its hand-computed result is [[1, 6], [0, 9]].
    image = np.array([[1, 1, -2, 0, 1], [1, 0, 0, 2, 1], [0, 1, 0, 5, -1],
                      [-2, 1, 0, -1, 1], [0, 1, 0, 5, -1]])
    kernel = np.array([[0, 1, 1], [1, 0, 0], [0, 1, 0]])
    mat = cyconv.conv_matrix(kernel, (5, 5), stride=2)
    assert mat.shape == (4, 25)
    assert_array_equal(mat @ image.ravel(), [1, 6, 0, 9])
    assert_array_equal(cyconv.conv_operator(kernel, (5, 5), stride=2) @ image.ravel(),
                       [1, 6, 0, 9])
    # Row r = (i, j) is K placed at the top-left corner (2i, 2j), zeros elsewhere.
    for r, (i, j) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)]):
        placed = np.zeros((5, 5))
        placed[2 * i:2 * i + 3, 2 * j:2 * j + 3] = kernel
        assert_array_equal(mat.toarray()[r].reshape(5, 5), placed)


def test_empty_shapes():
    op = cyconv.conv_operator(np.ones((2, 0, 3, 3)), (1, 0, 4, 4), padding=1)
    assert op.shape == (32, 0)
    assert_array_equal(op @ np.zeros(0), np.zeros(32))
    assert cyconv.conv_matrix(np.ones((2, 0, 3, 3)), (1, 0, 4, 4), padding=1).shape == (32, 0)
    assert cyconv.conv_operator(np.ones((2, 1, 3, 3)), (0, 1, 4, 4)).shape == (0, 0)
    # No kernels: an empty output, and an adjoint that is all zeros.
    for func in (cyconv.conv_operator, cyconv.conv_matrix):
        op = func(np.ones((0, 2, 3, 3)), (2, 4, 4))
        assert op.shape == (0, 32)
        assert_array_equal(op.T @ np.zeros(0), np.zeros(32))


# ---------------------------------------------------------------- errors

BAD = [
    pytest.param((5, 5), np.ones((3, 3)), dict(stride=0), ValueError, id="stride0"),
    pytest.param((5, 5), np.ones((3, 3)), dict(stride=1.5), TypeError, id="stride-float"),
    pytest.param((5, 5), np.ones((3, 3)), dict(padding="full"), ValueError, id="padding-name"),
    pytest.param((5, 5), np.ones((3, 3)), dict(padding="same", stride=2), ValueError,
                 id="same-stride"),
    pytest.param((5, 5), np.ones((3, 3)), dict(padding=-1), ValueError, id="padding-negative"),
    pytest.param((5, 5), np.ones((6, 3)), {}, ValueError, id="kernel-too-tall"),
    pytest.param((5, 5), np.ones((3, 3)), dict(dilation=3), ValueError, id="dilated-too-big"),
    pytest.param((5, 5), np.ones((1, 1, 3, 3)), {}, ValueError, id="2d-input-4d-weight"),
    pytest.param((1, 5, 5), np.ones((3, 3)), {}, ValueError, id="3d-input-2d-weight"),
    pytest.param((5,), np.ones((3, 3)), {}, ValueError, id="1d-input"),
    pytest.param((1, 1, 1, 5, 5), np.ones((1, 1, 3, 3)), {}, ValueError, id="5d-input"),
    pytest.param((4, 5, 5), np.ones((2, 3, 3, 3)), {}, ValueError, id="channels"),
    pytest.param((4, 5, 5), np.ones((3, 2, 3, 3)), dict(groups=2), ValueError, id="groups-K"),
    pytest.param((5, 5), np.ones((3, 3)), dict(padding=5, padding_mode="reflect"), ValueError,
                 id="reflect-too-far"),
    pytest.param((5, 5), np.ones((3, 3)), dict(padding=6, padding_mode="circular"), ValueError,
                 id="circular-too-far"),
    pytest.param((5, 5), np.ones((3, 3)), dict(padding_mode="mirror"), ValueError,
                 id="padding-mode-name"),
    pytest.param((5, 5), np.ones((3, 3), complex), {}, TypeError, id="complex-weight"),
    pytest.param((5, 5), np.array([["a"]]), {}, TypeError, id="string-weight"),
]


@pytest.mark.parametrize("xs, w, kwargs, exc", BAD)
def test_errors_as_conv2d(xs, w, kwargs, exc):
    # The same exception and message as conv2d on an input of that shape.
    with pytest.raises(exc) as expected:
        cyconv.conv2d(np.ones(xs), w, **kwargs)
    for func in (cyconv.conv_operator, cyconv.conv_matrix):
        with pytest.raises(exc) as got:
            func(w, xs, **kwargs)
        assert str(got.value) == str(expected.value).replace("conv2d", func.__name__)


@pytest.mark.parametrize("func", [cyconv.conv_operator, cyconv.conv_matrix])
def test_bad_input_shape(func):
    with pytest.raises(TypeError, match="input_shape"):
        func(np.ones((3, 3)), 5)
    with pytest.raises(TypeError, match=r"input_shape\[1\]"):
        func(np.ones((3, 3)), (5, 5.0))
    with pytest.raises(ValueError, match=r"input_shape\[0\]"):
        func(np.ones((3, 3)), (-5, 5))


def test_wrong_vector_length():
    op = cyconv.conv_operator(np.ones((3, 3)), (5, 5))
    with pytest.raises(ValueError, match="dimension mismatch"):
        op @ np.ones(24)


# ---------------------------------------------------------------- example

def _load_example(name):
    path = Path(__file__).resolve().parent.parent / "examples" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"example_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_deblur_example_improves_psnr():
    pytest.importorskip("matplotlib")
    deblur = _load_example("deblur")
    result = deblur.run(size=64)
    original = result["original"]
    assert original.shape == (64, 64) and 0 <= original.min() < original.max() <= 1
    # PSNR by its definition, from the images themselves.
    for key in ("blurred", "recovered"):
        mse = np.mean((result[key] - original) ** 2)
        assert_allclose(result[f"psnr_{key}"], 10 * np.log10(1 / mse))
    # The blur is the conv2d the example says, up to the added noise (std 0.005).
    noise = result["blurred"] - cyconv.conv2d(original, deblur.gaussian_kernel(7, 1.5),
                                              padding="same", padding_mode="reflect")
    assert 0.004 < noise.std() < 0.006
    # Seeded run: 19.2 dB -> 22.6 dB at 64x64.
    assert result["psnr_recovered"] > result["psnr_blurred"] + 2.5
