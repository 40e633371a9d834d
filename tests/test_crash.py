"""Adversarial calls never crash the process: each gives a clean exception or a result.

The calls run in child processes, so a segfault or an abort is a failed test
rather than a dead test run. Each group of calls is one child: it evaluates
the calls one by one and reports, per call, the exception type and message
(or that it returned and whether the result passed its check). A call that
raises must raise the expected type with a message that starts with the
public function's name, i.e. it was refused by cyconv's own checks, not by
NumPy failing to allocate terabytes or by a C conversion overflowing.

The children run under an 8 GiB address-space limit, so an attempt to
allocate more than that fails (and is reported) instead of paging; every
oversized case below asks for at least a TiB or overflows 64 bits, well
beyond this machine's memory.
"""
import json
import os
import re
import subprocess
import sys
import textwrap

import pytest

CHILD = r'''
import faulthandler, json, os, resource, sys
faulthandler.enable()
if "asan" not in os.environ.get("LD_PRELOAD", ""):  # ASan reserves terabytes of shadow
    resource.setrlimit(resource.RLIMIT_AS, (8 * 2**30, 8 * 2**30))
import numpy as np
import scipy.signal
from cyconv import *
ns = dict(globals())
exec(PRELUDE, ns)
for i, (expr, check) in enumerate(json.load(sys.stdin)):
    print(json.dumps(["start", i]), flush=True)
    try:
        r = eval(expr, ns)
    except Exception as exc:
        out = [type(exc).__name__, str(exc)[:300]]
    else:
        out = ["ok", bool(eval(check, dict(ns, r=r)))]
    print(json.dumps(["done", i] + out), flush=True)
'''

# Names the calls below use, defined in each child.
PRELUDE = textwrap.dedent('''
    X4 = np.arange(2 * 4 * 5 * 5, dtype=float).reshape(2, 4, 5, 5)
    W4 = np.ones((6, 2, 3, 3))           # fits X4 with groups=2
    W1 = np.ones((6, 4, 3, 3))           # fits X4 with groups=1
    X2 = np.arange(25.0).reshape(5, 5)
    W2 = np.ones((3, 3))
    NAN4 = np.full((1, 2, 4, 4), np.nan)
    INF2 = np.full((4, 4), np.inf)
    OBJ = np.array([[1.0, None], [2.0, 3.0]], dtype=object)
    STR = np.array([["a", "b"], ["c", "d"]])
    CPLX = np.ones((4, 4), complex)
    IDX = np.zeros((2, 4, 2, 2), np.int64)
    G4 = np.ones((2, 4, 2, 2))

    def big(*shape, dtype=np.float64):
        """A view of huge logical shape held in one element of memory."""
        return np.broadcast_to(np.ones((), dtype), shape)
''')

# Values that are not an int or a pair of ints >= 1 (TypeError or ValueError).
BAD_POSITIVE = [("0", "ValueError"), ("-1", "ValueError"), ("(1, 0)", "ValueError"),
                ("(-2**63, 1)", "ValueError"), ("(1, 2, 3)", "ValueError"),
                ("()", "ValueError"), ("1.0", "TypeError"), ("2.5", "TypeError"),
                ("True", "TypeError"), ("None", "TypeError"), ("'2'", "TypeError"),
                ("(1, 1.0)", "TypeError"), ("np.float64(1)", "TypeError"),
                ("[np.nan, 1]", "TypeError"), ("object()", "TypeError")]
# Values that overflow a 64-bit index somewhere: refused before any kernel runs.
HUGE_POSITIVE = ["2**62 + 1", "2**63", "2**64", "2**100", "(1, 2**63)", "np.uint64(2**64 - 1)"]
BAD_PADDING = [("-1", "ValueError"), ("(0, -1)", "ValueError"), ("-2**63", "ValueError"),
               ("1.5", "TypeError"), ("'full'", "ValueError"), ("None", "TypeError"),
               ("2**62", "ValueError"), ("2**63", "ValueError"), ("2**100", "ValueError"),
               ("(2**20, 2**20)", "MemoryError"), ("(0, 2**62)", "ValueError")]
# Arrays no kernel computes with.
BAD_ARRAYS = [("OBJ", "TypeError"), ("STR", "TypeError"), ("CPLX", "TypeError"),
              ("None", "TypeError"), ("[[1, 2], [3]]", "TypeError"),
              ("np.float64(1.0)", "ValueError"), ("np.ones(3)", "ValueError"),
              ("np.ones((1, 1, 1, 5, 5))", "ValueError"), ("np.ones((2, 2), np.longdouble)",
                                                          "TypeError")]


def conv2d_cases():
    """conv2d and output_shape: shapes, groups, parameters, huge sizes, odd values."""
    cases = []
    for value, error in BAD_POSITIVE:
        for name in ("stride", "dilation"):
            cases.append((f"conv2d(X4, W1, {name}={value})", error))
            cases.append((f"output_shape(X4.shape, W1.shape, {name}={value})", error))
    for value in HUGE_POSITIVE:
        for name in ("stride", "dilation", "padding"):
            cases.append((f"conv2d(X4, W1, {name}={value})", "ValueError"))
            cases.append((f"output_shape(X4.shape, W1.shape, {name}={value}, "
                          "padding=1)" if name != "padding" else
                          f"output_shape(X4.shape, W1.shape, padding={value})", "ValueError"))
    for value, error in BAD_PADDING:
        cases.append((f"conv2d(X4, W1, padding={value})", error))
        cases.append((f"conv2d(X4, W1, padding={value}, padding_mode='replicate')", error))
    for value, error in [("0", "ValueError"), ("3", "ValueError"), ("-2", "ValueError"),
                         ("2**70", "ValueError"), ("2.0", "TypeError"), ("True", "TypeError"),
                         ("'2'", "TypeError"), ("(2, 2)", "TypeError")]:
        cases.append((f"conv2d(X4, W4, groups={value})", error))
    for value, error in BAD_ARRAYS:
        cases.append((f"conv2d({value}, W2)", error))
        cases.append((f"conv2d(X2, {value})", error))
    cases += [
        # wrong ranks and mismatched shapes
        ("conv2d(X4, W2)", "ValueError"),
        ("conv2d(X2, W4)", "ValueError"),
        ("conv2d(X4, np.ones((6, 3, 3, 3)))", "ValueError"),
        ("conv2d(X4, np.ones((6, 4, 3)))", "ValueError"),
        ("conv2d(X4, np.ones((6, 4, 6, 3)))", "ValueError"),
        ("conv2d(X4, np.ones((6, 4, 0, 3)))", "ValueError"),
        ("conv2d(X4, W1, bias=np.ones(5))", "ValueError"),
        ("conv2d(X4, W1, bias=STR[0])", "TypeError"),
        ("conv2d(X4, W1, bias=np.ones((6, 1)))", "ValueError"),
        ("conv2d(X4, W1, padding='same', stride=2)", "ValueError"),
        ("conv2d(X4, W1, padding=5, padding_mode='reflect')", "ValueError"),
        ("conv2d(X4, W1, padding=6, padding_mode='circular')", "ValueError"),
        ("conv2d(X4, W1, padding_mode='mirror')", "ValueError"),
        ("conv2d(X4, W1, padding_mode=None)", "ValueError"),
        ("conv2d(X4, W1, padding_mode=['zeros'])", "ValueError"),
        ("conv2d(X4, W1, method='bogus')", "ValueError"),
        ("conv2d(X4, W1, method=None)", "ValueError"),
        ("conv2d(np.ones((1, 1, 0, 4)), np.ones((1, 1, 1, 1)))", "ValueError"),
        ("conv2d(np.ones((1, 1, 0, 4)), np.ones((1, 1, 1, 1)), padding=1, "
         "padding_mode='reflect')", "ValueError"),
        ("output_shape('abc', W1.shape)", "TypeError"),
        ("output_shape(5, W1.shape)", "TypeError"),
        ("output_shape((1, -1, 3, 3), W1.shape)", "ValueError"),
        ("output_shape((1, 4, 3.5, 3), W1.shape)", "TypeError"),
        ("output_shape((1, 4, 5, 5, 5), W1.shape)", "ValueError"),
        # sizes whose copies or outputs cannot exist: refused before allocating
        ("conv2d(big(2**20, 1, 2**20, 4), np.ones((1, 1, 2, 2)))", "MemoryError"),
        ("conv2d(big(1, 1, 2**29, 2**30), np.ones((1, 1, 1, 1)))", "MemoryError"),
        ("conv2d(big(2**29, 2**30), big(2**29, 2**30))", "MemoryError"),
        ("conv2d(X2, big(2**21, 2**21), padding=2**20 + 2)", "MemoryError"),
        ("conv2d(big(1, 2**16, 2**16, 2), big(2**10, 2**16, 2**16, 2), method='im2col')",
         "MemoryError"),
        ("conv2d(np.ones((1, 1, 1, 1)), np.ones((1, 1, 1, 1)), padding=2**20, stride=2**20,"
         " padding_mode='circular')", "ValueError"),
        ("conv2d(np.ones((1, 1, 1, 1)), np.ones((1, 1, 1, 1)), padding=2**21, "
         "padding_mode='replicate', stride=2**22)", "MemoryError"),
        # legitimate edge calls: results, with a check evaluated on r
        # one window (the middle one) reaches the image across 2**40 cells of padding
        ("conv2d(X4, W1, padding=2**40, stride=2**40)", "ok:r.shape == (2, 6, 3, 3) and "
         "(r[..., 1, 1] == X4[:, :, :3, :3].sum(axis=(1, 2, 3))[:, None]).all() and "
         "np.abs(r).sum() == np.abs(r[..., 1, 1]).sum()"),
        ("conv2d(X4, W1, padding=(1, 2**61 - 3), stride=(1, 2**61))",
         "ok:r.shape == (2, 6, 5, 2) and (r[..., 0] == 0).all()"),
        ("conv2d(np.ones((1, 1, 1, 1)), np.ones((1, 1, 1, 1)), dilation=2**62)",
         "ok:(r == 1).all()"),
        ("conv2d(NAN4, np.ones((1, 2, 2, 2)))", "ok:np.isnan(r).all()"),
        ("conv2d(INF2, np.zeros((2, 2)))", "ok:np.isnan(r).all()"),
        ("conv2d(INF2, np.ones((2, 2)), method='im2col')", "ok:np.isposinf(r).all()"),
        ("conv2d(-INF2, np.ones((2, 2)), bias=np.inf)", "ok:np.isnan(r).all()"),
        ("conv2d([[1, 2], [3, 4]], [[1]])", "ok:(r == [[1, 2], [3, 4]]).all()"),
        ("conv2d(np.ones((2, 2), bool), np.ones((2, 2), np.int8))", "ok:r.dtype == np.float64"),
        ("conv2d(np.ones((2, 2), np.float16), np.ones((1, 1), np.float16))",
         "ok:r.dtype == np.float32"),
        ("conv2d(np.ones((0, 4, 5, 5)), W1)", "ok:r.shape == (0, 6, 3, 3)"),
        ("conv2d(np.ones((2, 0, 5, 5)), np.ones((3, 0, 2, 2)), bias=np.arange(3.0))",
         "ok:r.shape == (2, 3, 4, 4) and (r == np.arange(3.0)[:, None, None]).all()"),
        ("conv2d(X4, W1, stride=np.array(2), padding=np.int8(1))", "ok:r.shape == (2, 6, 3, 3)"),
        ("output_shape((2**70, 4, 5, 5), W1.shape)", "ok:r == (2**70, 6, 3, 3)"),
        # method='fft': one channel and kernel; the dilated kernel spans the padding
        ("conv2d(X4, W1, method='fft')", "ValueError"),
        ("conv2d(X2, W2, dilation=2**40, padding=2**40, stride=2**41, method='fft')",
         "ValueError"),
        ("conv2d(X2, W2, dilation=(1, 2**33), padding=(0, 2**33), stride=(1, 2**34), "
         "method='fft')", "MemoryError"),
        ("conv2d(X2, W2, padding=2**40, stride=2**40, method='fft')",
         "ok:r.shape == (3, 3) and r[1, 1] == X2[:3, :3].sum() and np.abs(r).sum() == r[1, 1]"),
        ("conv2d(INF2, W2, method='fft')", "ok:np.isposinf(r).all()"),
        ("conv2d(np.full((4, 4), np.nan), W2, method='fft')", "ok:np.isnan(r).all()"),
        ("conv2d(np.ones((0, 1, 4, 4)), np.ones((1, 1, 2, 2)), method='fft')",
         "ok:r.shape == (0, 1, 3, 3)"),
    ]
    return cases


def backward_cases():
    """conv2d_backward: the forward's errors plus grad_output and output_mask."""
    gy = "np.ones((2, 6, 3, 3))"
    cases = []
    for value, error in BAD_POSITIVE[:8]:
        for name in ("stride", "dilation"):
            cases.append((f"conv2d_backward({gy}, X4, W1, {name}={value})", error))
    for value in HUGE_POSITIVE:
        cases.append((f"conv2d_backward({gy}, X4, W1, padding={value})", "ValueError"))
        cases.append((f"conv2d_backward({gy}, X4, W1, stride={value})", "ValueError"))
    for value, error in BAD_ARRAYS:
        cases.append((f"conv2d_backward({value}, X2, W2)", error))
        cases.append((f"conv2d_backward(np.ones((3, 3)), {value}, W2)", error))
        cases.append((f"conv2d_backward(np.ones((3, 3)), X2, {value})", error))
    for mask, error in [("(True, True)", "ValueError"), ("'yes'", "TypeError"),
                        ("(1, 1, 1)", "TypeError"), ("None", "TypeError"),
                        ("(True, None, False)", "TypeError")]:
        cases.append((f"conv2d_backward({gy}, X4, W1, output_mask={mask})", error))
    cases += [
        ("conv2d_backward(np.ones((2, 6, 3, 4)), X4, W1)", "ValueError"),
        ("conv2d_backward(np.ones((6, 3, 3)), X4, W1)", "ValueError"),
        ("conv2d_backward(np.ones((2, 6, 3, 3)), X4, W4, groups=3)", "ValueError"),
        ("conv2d_backward(np.ones((2, 6, 3, 3)), X4, W1, method='bogus')", "ValueError"),
        ("conv2d_backward(np.ones((2, 6, 3, 3)), X4, W1, padding_mode='wrap')", "ValueError"),
        ("conv2d_backward(big(1, 1, 2**20, 2**20), big(1, 1, 2**20, 2**20), "
         "np.ones((1, 1, 1, 1)))", "MemoryError"),
        ("conv2d_backward(np.ones((1, 1, 2, 2)), np.ones((1, 1, 1, 1)), big(1, 1, 2**22, 2**22),"
         " padding=2**21)", "MemoryError"),
        ("conv2d_backward(big(1, 1, 2**21 + 1, 2**21 + 1), np.ones((1, 1, 1, 1)), "
         "np.ones((1, 1, 1, 1)), padding=2**20)", "MemoryError"),
        ("conv2d_backward(np.arange(9.0).reshape(1, 1, 3, 3), np.ones((1, 1, 1, 1)), "
         "np.ones((1, 1, 1, 1)), padding=2**40, stride=2**40)",
         "ok:r[0][0, 0, 0, 0] == 4 and r[1][0, 0, 0, 0] == 4 and r[2][0] == 36"),
        ("conv2d_backward(np.full((1, 1, 2, 2), np.nan), X2[None, None, :3, :3], "
         "np.ones((1, 1, 2, 2)))", "ok:np.isnan(r[0]).all() and np.isnan(r[1]).all()"),
        ("conv2d_backward(np.ones((0, 6, 3, 3)), np.ones((0, 4, 5, 5)), W1)",
         "ok:r[0].shape == (0, 4, 5, 5) and (r[1] == 0).all() and (r[2] == 0).all()"),
        ("conv2d_backward([[1.0]], [[1, 2], [3, 4]], [[1, 1], [1, 1]])",
         "ok:(r[0] == 1).all() and (r[1] == [[1, 2], [3, 4]]).all()"),
    ]
    return cases


def unfold_cases():
    """im2col and col2im."""
    cases = []
    for value, error in BAD_POSITIVE:
        for name in ("kernel_size", "stride", "dilation"):
            cases.append((f"im2col(X4, **{{'kernel_size': 2, '{name}': {value}}})", error))
            cases.append((f"col2im(np.ones((4, 16)), (5, 5), **{{'kernel_size': 2, "
                          f"'{name}': {value}}})", error))
    for value in HUGE_POSITIVE:
        cases.append((f"im2col(X4, 2, stride={value})", "ValueError"))
        cases.append((f"im2col(X4, {value}, padding=2**62)", "ValueError"))
        cases.append((f"col2im(np.ones((1, 1)), {value}, 1, stride={value})", "ValueError"))
    for value, error in BAD_ARRAYS[:5] + BAD_ARRAYS[6:]:
        cases.append((f"im2col({value}, 1)", error))
        cases.append((f"col2im({value}, (2, 2), 1)", error))
    cases += [
        ("im2col(np.ones(5), 1)", "ValueError"),
        ("im2col(np.float64(1), 1)", "ValueError"),
        ("im2col(X4, 6)", "ValueError"),
        ("im2col(X4, 2, padding='same')", "TypeError"),
        ("im2col(X4, 2, padding=-1)", "ValueError"),
        ("im2col(X4, 1, padding=2**40)", "ValueError"),
        ("im2col(X4, 2**31, padding=2**31)", "ValueError"),
        ("im2col(X4, 1, padding=2**20)", "MemoryError"),
        ("im2col(big(1, 1, 2**20, 2**20), 3)", "MemoryError"),
        ("col2im(np.ones(16), (5, 5), 2)", "ValueError"),
        ("col2im(np.ones((2, 3, 4, 16)), (5, 5), 2)", "ValueError"),
        ("col2im(np.ones((5, 16)), (5, 5), 2)", "ValueError"),
        ("col2im(np.ones((4, 15)), (5, 5), 2)", "ValueError"),
        ("col2im(np.ones((4, 16)), (-5, 5), 2)", "ValueError"),
        ("col2im(np.ones((4, 16)), (5, 5, 5), 2)", "ValueError"),
        ("col2im(np.ones((4, 16)), 'ab', 2)", "TypeError"),
        ("col2im(np.ones((1, 1)), (2**40, 2**40), 1, stride=2**40)", "ValueError"),
        ("col2im(np.ones((1, 1)), (2**20, 2**20), 1, stride=2**20)", "MemoryError"),
        ("col2im(big(2**10, 2**40), (2**20, 2**20), 1)", "MemoryError"),
        ("im2col(X4, 2, padding=2**40, stride=2**40)", "ok:r.shape == (2, 16, 9) and "
         "(r[:, :, 4] == X4[:, :, :2, :2].reshape(2, 16)).all() and "
         "(np.delete(r, 4, axis=2) == 0).all()"),
        ("im2col(np.full((2, 2), np.nan), 2)", "ok:np.isnan(r).all()"),
        ("im2col(np.ones((0, 3, 4, 4)), 2)", "ok:r.shape == (0, 12, 9)"),
        ("im2col(np.ones((2, 0, 4, 4)), 2)", "ok:r.shape == (2, 0, 9)"),
        ("im2col([[1, 2], [3, 4]], 1)", "ok:(r == [[1, 2, 3, 4]]).all()"),
        ("col2im(np.ones((0, 4, 16)), (5, 5), 2)", "ok:r.shape == (0, 1, 5, 5)"),
        ("col2im(np.full((1, 1), np.inf), (1, 1), 1)", "ok:np.isposinf(r).all()"),
    ]
    return cases


def pool_cases():
    """max/avg pooling forward and backward."""
    cases = []
    for func in ("max_pool2d", "avg_pool2d"):
        for value, error in BAD_POSITIVE:
            cases.append((f"{func}(X4, {value})", error))
            if value != "None":  # stride=None means stride = kernel_size
                cases.append((f"{func}(X4, 2, stride={value})", error))
        for value in HUGE_POSITIVE:
            cases.append((f"{func}(X4, 1, stride={value})", "ValueError"))
            cases.append((f"{func}(X4, {value})", "ValueError"))
        for value, error in BAD_ARRAYS:
            cases.append((f"{func}({value}, 1)", error))
        cases += [
            (f"{func}(X4, 2, padding=2)", "ValueError"),
            (f"{func}(X4, 2, padding=-1)", "ValueError"),
            (f"{func}(X4, 6)", "ValueError"),
            (f"{func}(X4, 2, ceil_mode='yes')", "TypeError"),
            (f"{func}(X4, 2, ceil_mode=None)", "TypeError"),
            (f"{func}(np.ones((2, 0, 4)), 1)", "ValueError"),
            (f"{func}(big(2**20, 2**20), 1)", "MemoryError"),
            (f"{func}(big(2**29, 2**30), 2**20)", "MemoryError"),
            (f"{func}(X4, 3, stride=2**62, padding=1, ceil_mode=True)",
             "ok:np.allclose(r[..., 0, 0], X4[:, :, :2, :2].sum(axis=(2, 3)) / 9)"
             if func == "avg_pool2d" else
             "ok:(r == X4[:, :, :2, :2].max(axis=(2, 3))[..., None, None]).all()"),
            (f"{func}(NAN4, 2)", "ok:np.isnan(r).all()"),
            (f"{func}(np.ones((0, 3, 4, 4)), 2)", "ok:r.shape == (0, 3, 2, 2)"),
            (f"{func}(np.ones((3, 0, 4, 4)), 2)", "ok:r.shape == (3, 0, 2, 2)"),
            (f"{func}([[1, 2], [3, 4]], 2)", "ok:r.shape == (1, 1)"),
        ]
    cases += [
        ("max_pool2d(X4, 2, return_indices=1)", "TypeError"),
        ("max_pool2d(X4, 2, dilation=0)", "ValueError"),
        ("max_pool2d(X4, 2, dilation=2**63)", "ValueError"),
        ("max_pool2d(np.ones((1, 1)), 3, padding=1, dilation=2)", "ValueError"),
        ("avg_pool2d(X4, 2, divisor_override=0)", "ValueError"),
        ("avg_pool2d(X4, 2, divisor_override=2**70)", "ValueError"),
        ("avg_pool2d(X4, 2, divisor_override=-2**63)", "ValueError"),
        ("avg_pool2d(X4, 2, divisor_override=1.5)", "TypeError"),
        ("avg_pool2d(X4, 2, count_include_pad='no')", "TypeError"),
        # kernels of 2**33 cells a side: the divisor 2**66 exceeds 64 bits
        ("avg_pool2d(np.ones((3, 3)), 2**33, padding=2**32)", "ok:np.isclose(r, 9 / 2**66).all()"),
        ("avg_pool2d_backward(np.ones((1, 1)), (3, 3), 2**33, padding=2**32)",
         "ok:np.isclose(r, 1 / 2**66).all()"),
        ("max_pool2d(np.full((3, 3), -np.inf), 2**33, padding=2**32)",
         "ok:np.isneginf(r).all()"),
        ("max_pool2d_backward(G4, IDX, (2, 4, 3, 3))", "ok:(r[:, :, 0, 0] == 4).all()"),
        ("max_pool2d_backward(G4, IDX - 2, (2, 4, 3, 3))", "ValueError"),
        ("max_pool2d_backward(G4, IDX + 9, (2, 4, 3, 3))", "ValueError"),
        ("max_pool2d_backward(G4, IDX + 2**62, (2, 4, 3, 3))", "ValueError"),
        ("max_pool2d_backward(G4, IDX.astype(float), (2, 4, 3, 3))", "TypeError"),
        ("max_pool2d_backward(G4, IDX[0], (2, 4, 3, 3))", "ValueError"),
        ("max_pool2d_backward(G4, IDX, (2, 3, 3, 3))", "ValueError"),
        ("max_pool2d_backward(G4, IDX, (3, 3))", "ValueError"),
        ("max_pool2d_backward(G4, IDX, (2, 4, 3, 3, 1))", "ValueError"),
        ("max_pool2d_backward(G4, IDX, (2, 4, -3, 3))", "ValueError"),
        ("max_pool2d_backward(G4, IDX, 'abcd')", "TypeError"),
        ("max_pool2d_backward(OBJ, IDX[0, 0], (3, 3))", "TypeError"),
        ("max_pool2d_backward(np.ones((1, 1)), np.zeros((1, 1), int), (2**40, 2**40))",
         "ValueError"),
        ("max_pool2d_backward(np.ones((1, 1)), np.zeros((1, 1), int), (2**20, 2**20))",
         "MemoryError"),
        ("max_pool2d_backward(big(2**20, 2**20), big(2**20, 2**20, dtype=np.int64), "
         "(2**20, 2**20))", "MemoryError"),
        ("avg_pool2d_backward(np.ones((1, 1)), (2**30, 2**30), 2**30)", "ValueError"),
        ("avg_pool2d_backward(np.ones((1, 1)), (2**20, 2**20), 2**20)", "MemoryError"),
        ("avg_pool2d_backward(np.ones((1, 1)), (2**70, 2**70), 2**70)", "ValueError"),
        ("avg_pool2d_backward(np.ones((2, 2)), (6, 6), 2)", "ValueError"),
        ("avg_pool2d_backward(np.ones((2, 2)), (4, 4), 2, divisor_override=0)", "ValueError"),
        ("avg_pool2d_backward(STR, (4, 4), 2)", "TypeError"),
        ("avg_pool2d_backward(np.ones((2, 2)), (4, 4, 4, 4, 4), 2)", "ValueError"),
        ("avg_pool2d_backward(np.full((2, 2), np.nan), (4, 4), 2)", "ok:np.isnan(r).all()"),
    ]
    return cases


def signal_cases():
    """correlate2d and convolve2d; 'scipy' means: the same outcome as scipy.signal's."""
    cases = []
    for func in ("correlate2d", "convolve2d"):
        for value, error in [("OBJ", "scipy"), ("STR", "scipy"), ("np.ones(3)", "scipy"),
                             ("np.ones((2, 2, 2))", "scipy"), ("np.float64(1)", "scipy"),
                             ("np.ones((2, 2), bool)", "scipy"),
                             ("np.ones((2, 2), np.float16)", "scipy"),
                             ("[[1, 2], [3]]", "scipy"), ("None", "scipy")]:
            cases.append((f"{func}({value}, W2)", error))
            cases.append((f"{func}(X2, {value})", error))
        for kwargs in ["mode='bad'", "mode=None", "boundary='reflect'", "boundary=None",
                       "mode=['full']", "boundary={}", "fillvalue=1j", "fillvalue=object()",
                       "fillvalue=[1, 2]", "fillvalue=np.ones(2)", "fillvalue='a'",
                       "fillvalue=np.nan", "fillvalue=np.inf", "fillvalue=2**70"]:
            cases.append((f"{func}(X2, W2, {kwargs})", "scipy"))
        cases += [
            (f"{func}(np.ones((2, 5)), np.ones((3, 2)), mode='valid')", "scipy"),
            (f"{func}(np.ones((0, 3)), np.ones((0, 2)))", "scipy"),
            (f"{func}(X2, W2, method='bogus')", "ValueError"),
            (f"{func}(np.ones((0, 3)), np.ones((2, 2)), boundary='wrap')", "ValueError"),
            (f"{func}(np.ones((1, 1)), big(2**20, 2**20))", "MemoryError"),
            (f"{func}(big(2**20, 2**20), np.ones((3, 3)), boundary='wrap')", "MemoryError"),
            (f"{func}(big(2**29, 2**30), np.ones((3, 3)), mode='valid')", "MemoryError"),
            (f"{func}(np.ones((1, 1), np.int8), big(2**20, 2**20, dtype=np.int8), mode='same')",
             "MemoryError"),
            (f"{func}(INF2, np.zeros((2, 2)))", "scipy"),
            (f"{func}(INF2, W2, boundary='symm', mode='same')", "scipy"),
            (f"{func}(np.full((3, 3), np.nan), W2, method='im2col')", "scipy"),
            (f"{func}(np.ones((3, 3), np.int64) * 2**62, np.ones((2, 2), np.int64) * 4)",
             "scipy"),
            (f"{func}([[1, 2], [3, 4]], [[1j]])", "scipy"),
            (f"{func}(np.ones((0, 0)), np.ones((1, 1)), mode='same')", "scipy"),
        ]
    return cases


def operator_cases():
    """conv_operator and conv_matrix: the forward's checks plus input_shape."""
    cases = []
    for func in ("conv_operator", "conv_matrix"):
        for value, error in BAD_POSITIVE[:8]:
            cases.append((f"{func}(W1, X4.shape, stride={value})", error))
        for value in HUGE_POSITIVE:
            cases.append((f"{func}(W1, X4.shape, padding={value})", "ValueError"))
        for value, error in BAD_ARRAYS:
            cases.append((f"{func}({value}, (5, 5))", error))
        for shape, error in [("'ab'", "TypeError"), ("5", "TypeError"), ("(5,)", "ValueError"),
                             ("(2, 4, -5, 5)", "ValueError"), ("(2, 4, 5.0, 5)", "TypeError"),
                             ("(2, 3, 5, 5)", "ValueError"), ("(2**70, 4)", "ValueError"),
                             ("(2**20, 2**20)", "MemoryError"), ("(2**31, 2**31)", "ValueError"),
                             ("X4", "TypeError")]:
            cases.append((f"{func}(W2, {shape})", error))
        cases += [
            (f"{func}(W2, (5, 5), padding=2**20)", "MemoryError"),
            # conv2d pads with zeros without copying: so does the operator; the
            # matrix numbers every padded cell.
            (f"{func}(W2, (5, 5), padding=2**20, stride=2**20)",
             "ok:r.shape == (9, 25)" if func == "conv_operator" else "MemoryError"),
            (f"{func}(W2, (5, 5), padding=6, padding_mode='reflect')", "ValueError"),
            (f"{func}(W2, (5, 5), padding_mode='wrap')", "ValueError"),
            (f"{func}(big(2**20, 2**20), (2**20, 2**20))", "MemoryError"),
            (f"{func}(np.full((2, 2), np.nan), (3, 3))", "ok:r.shape == (4, 9)"),
            (f"{func}(W1, (0, 4, 5, 5))", "ok:r.shape == (0, 0)"),
            (f"{func}(np.ones((3, 0, 2, 2)), (2, 0, 5, 5))", "ok:r.shape == (96, 0)"),
        ]
    cases += [
        ("conv_matrix(np.ones((4096, 1, 3, 3)), (1, 1, 1024, 1024))", "MemoryError"),
        ("conv_matrix(big(2**14, 1, 3, 3), (1, 1, 2**12, 2**12))", "MemoryError"),
        ("conv_operator(W2, (5, 5)) @ np.arange(25.0)",
         "ok:np.array_equal(r, conv2d(np.arange(25.0).reshape(5, 5), W2).ravel())"),
        ("conv_operator(W2, (5, 5)).T @ np.full(9, np.nan)", "ok:np.isnan(r).all()"),
    ]
    return cases


GROUPS = {"conv2d": conv2d_cases, "operator": operator_cases, "conv2d_backward": backward_cases, "unfold": unfold_cases,
          "pooling": pool_cases, "signal": signal_cases}


def _scipy_expr(expr):
    """The same call to scipy.signal, with cyconv-only keywords dropped."""
    return "scipy.signal." + re.sub(r", method='\w+'", "", expr)


def _run_child(calls):
    """Evaluate ``calls`` [(expr, check)] in a child; returns (returncode, results, stderr)."""
    proc = subprocess.run([sys.executable, "-c", f"PRELUDE = {PRELUDE!r}\n" + CHILD],
                          input=json.dumps(calls), capture_output=True, text=True,
                          timeout=300, env=dict(os.environ, PYTHONWARNINGS="ignore"))
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    return proc.returncode, lines, proc.stderr


@pytest.mark.parametrize("group", sorted(GROUPS))
def test_adversarial_calls_fail_cleanly(group):
    cases = GROUPS[group]()
    calls = []
    for expr, expected in cases:
        check = expected[3:] if expected.startswith("ok:") else "True"
        calls.append((expr, check))
        if expected == "scipy":
            calls.append((_scipy_expr(expr), "True"))
    returncode, lines, stderr = _run_child(calls)
    started = [line[1] for line in lines if line[0] == "start"]
    # A signal (negative return code) names the call that was running.
    assert returncode == 0, (
        f"child died with {returncode} during {calls[started[-1]][0] if started else '?'}:"
        f"\n{stderr[-3000:]}")
    results = {line[1]: line[2:] for line in lines if line[0] == "done"}
    assert len(results) == len(calls)

    wrong = []
    i = 0
    for expr, expected in cases:
        kind, detail = results[i]
        func = expr[:expr.index("(")]
        if expected == "scipy":
            i += 1
            expected = results[i][0]  # SciPy's outcome is the reference
            if expected == "ok" and kind == "ok":
                detail = True
        i += 1
        if expected.startswith("ok"):
            if kind != "ok" or detail is not True:
                wrong.append(f"{expr}: expected a result passing {expected!r}, got {kind} "
                             f"{detail}")
        elif kind != expected:
            wrong.append(f"{expr}: expected {expected}, got {kind}: {detail}")
        elif not detail.startswith(f"{func}:"):
            # Raised, but not by cyconv's own checks (NumPy, a C conversion, ...).
            wrong.append(f"{expr}: {kind} not raised by {func}'s checks: {detail}")
    assert not wrong, f"{len(wrong)} of {len(cases)} calls misbehaved:\n" + "\n".join(wrong)
