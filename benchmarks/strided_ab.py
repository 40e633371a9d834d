"""Strided layers: today's im2col paths against the sub-pixel (polyphase) decomposition.

    python benchmarks/strided_ab.py [threads] [rounds]

The idea measured (issue 12, the strided part): at stride s and dilation 1
a strided convolution is s*s stride-1 ones, each run by the shifted GEMMs
that read the image in place (cyconv._shifted_gemm), with no unrolled copy:

- forward: the sum over the tap phases (a, b) of the stride-1 correlation of
  the phase image ``x[a - pad::s, b - pad::s]`` with ``w[..., a::s, b::s]``;
- input gradient (and so conv_transpose2d): each output phase (py, px) of
  grad_input is a stride-1 correlation of grad_output with the flipped,
  channel-transposed sub-kernel, written in place: no col2im scatter-add.

The prototype below (``poly_forward``, ``poly_grad_input``) is checked
against cyconv first, then timed interleaved with cyconv's 'auto' (A, im2col
and GEMM + col2im at stride 2) and PyTorch on the runner's layers (float32,
N=8): conv2d C128-28-K256 3x3/2 pad 1 forward and input gradient,
the input and weight gradients together (the runner's backward row), and
conv_transpose2d C64-28-K32 4x4/2 pad 1. "gemms" times the forward's own
GEMMs without the unroll (a 1x1 convolution of the unrolled columns): the
most any copy-free formulation of the same products can save. Each round
times every entry (median of 7 calls); at one thread CPU time of the calling
thread (less sensitive to a loaded machine), else wall time. Prints the
medians over the rounds and the median per-round ratios to A.
"""
import sys
import time

import numpy as np

import cyconv
from cyconv._conv import geometry
from cyconv._shifted_gemm import run_shifted_forward
from cyconv._threads import thread_limit

try:
    import torch
except ImportError:
    torch = None


def poly_forward(x, w, stride, pad):
    """conv2d(x, w, stride=stride, padding=pad) as stride*stride stride-1 correlations."""
    n, c, h, wd = x.shape
    k, _, kh, kw = w.shape
    geom = geometry("poly", x.shape, w.shape, stride, pad, 1, 1)
    out = np.empty((n, k, geom.ho, geom.wo), x.dtype)
    tmp = np.empty_like(out)
    zeros = np.zeros(k, x.dtype)
    first = True
    for a in range(min(stride, kh)):
        u0 = max(0, -((a - pad) // stride))  # first phase row inside the image
        for b in range(min(stride, kw)):
            v0 = max(0, -((b - pad) // stride))
            sub = np.ascontiguousarray(w[:, :, a::stride, b::stride])
            src = np.ascontiguousarray(
                x[:, :, a - pad + stride * u0::stride, b - pad + stride * v0::stride])
            sub_geom = geom._replace(kh=sub.shape[2], kw=sub.shape[3], sh=1, sw=1,
                                     height=src.shape[2], width=src.shape[3])
            run_shifted_forward("poly", src, sub, zeros, False, out if first else tmp,
                                sub_geom, u0, v0)
            if not first:
                out += tmp
            first = False
    return out


def poly_grad_input(gy, w, x_shape, stride, pad):
    """conv2d_backward's input gradient (dilation 1, groups 1), one stride-1 forward per phase."""
    k, c, kh, kw = w.shape
    h, wd = x_shape[2:]
    geom = geometry("poly", x_shape, w.shape, stride, pad, 1, 1)
    wt = w.transpose(1, 0, 2, 3)[..., ::-1, ::-1]  # (C, K, kh, kw), flipped
    zeros = np.zeros(c, gy.dtype)
    grad = np.empty(x_shape, gy.dtype)
    for py in range(min(stride, h)):
        r = (py + pad) % stride  # taps p = r + stride*m meet row py + stride*u
        mh, ch = len(range(r, kh, stride)), (py + pad - r) // stride
        for px in range(min(stride, wd)):
            s = (px + pad) % stride
            mw, cw = len(range(s, kw, stride)), (px + pad - s) // stride
            target = grad[:, :, py::stride, px::stride]
            if mh == 0 or mw == 0:
                target[...] = 0
                continue
            sub = np.ascontiguousarray(
                wt[:, :, (kh - 1 - r) % stride::stride, (kw - 1 - s) % stride::stride])
            top, left = mh - 1 - ch, mw - 1 - cw
            assert top >= 0 and left >= 0, "padding beyond the kernel: not prototyped"
            phase = np.empty((gy.shape[0], c) + target.shape[2:], gy.dtype)
            sub_geom = geom._replace(kh=mh, kw=mw, sh=1, sw=1, channels=k, kernels=c,
                                     height=gy.shape[2], width=gy.shape[3],
                                     ho=phase.shape[2], wo=phase.shape[3])
            run_shifted_forward("poly", gy, sub, zeros, False, phase, sub_geom, top, left)
            target[...] = phase
    return grad


def median_ms(fn, clock, repeats=7):
    times = []
    for _ in range(repeats):
        start = clock()
        fn()
        times.append(clock() - start)
    return 1e3 * float(np.median(times))


def ab_rounds(label, entries, base, new, threads, rounds, clock, tol):
    """Check ``new`` against ``base``, then time every entry interleaved for ``rounds``
    rounds (median of 7 calls each) and print the medians and the median
    per-round ratios to ``base``."""
    ref, got = entries[base](), entries[new]()
    err = float(np.abs(got - ref).max() / np.abs(ref).max())
    assert err < tol, (label, err)
    res = {}
    with thread_limit(threads):
        for _ in range(rounds):
            for name, fn in entries.items():
                res.setdefault(name, []).append(median_ms(fn, clock))
    baseline = np.array(res[base])
    print(f"{label}: ms", {k: round(float(np.median(v)), 2) for k, v in res.items()},
          f"ratio to {base}",
          {k: round(float(np.median(np.array(v) / baseline)), 3)
           for k, v in res.items() if k != base}, flush=True)


def cases():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 128, 28, 28), dtype=np.float32)
    w = rng.standard_normal((256, 128, 3, 3), dtype=np.float32)
    gy = rng.standard_normal((8, 256, 14, 14), dtype=np.float32)
    xt = rng.standard_normal((8, 64, 28, 28), dtype=np.float32)
    wt = rng.standard_normal((64, 32, 4, 4), dtype=np.float32)
    cols = cyconv.im2col(x, 3, stride=2, padding=1).reshape(8, -1, 14, 14)
    w1 = w.reshape(256, -1, 1, 1)
    fwd = {
        "A": lambda: cyconv.conv2d(x, w, stride=2, padding=1),
        "poly": lambda: poly_forward(x, w, 2, 1),
        "gemms": lambda: cyconv.conv2d(cols, w1),
    }
    grad = {
        "A": lambda: cyconv.conv2d_backward(gy, x, w, stride=2, padding=1,
                                            output_mask=(True, False, False))[0],
        "poly": lambda: poly_grad_input(gy, w, x.shape, 2, 1),
    }
    # The runner's backward row: input and weight gradients (the weight
    # gradient is im2col's in both).
    both = {
        "A": lambda: cyconv.conv2d_backward(gy, x, w, stride=2, padding=1,
                                            output_mask=(True, True, False))[0],
        "poly": lambda: (poly_grad_input(gy, w, x.shape, 2, 1), cyconv.conv2d_backward(
            gy, x, w, stride=2, padding=1, output_mask=(False, True, False)))[0],
    }
    # conv_transpose2d(xt, wt) is conv2d_backward's input gradient with grad_output xt.
    transpose = {
        "A": lambda: cyconv.conv_transpose2d(xt, wt, stride=2, padding=1),
        "poly": lambda: poly_grad_input(xt, wt, (8, 32, 56, 56), 2, 1),
    }
    if torch is not None:
        tx, tw, tg, txt, twt = (torch.from_numpy(a) for a in (x, w, gy, xt, wt))
        fwd["torch"] = lambda: torch.nn.functional.conv2d(tx, tw, None, 2, 1)
        grad["torch"] = lambda: torch.ops.aten.convolution_backward(
            tg, tx, tw, None, (2, 2), (1, 1), (1, 1), False, (0, 0), 1, (True, False, False))
        both["torch"] = lambda: torch.ops.aten.convolution_backward(
            tg, tx, tw, None, (2, 2), (1, 1), (1, 1), False, (0, 0), 1, (True, True, False))
        transpose["torch"] = lambda: torch.nn.functional.conv_transpose2d(txt, twt, None, 2, 1)
    return {"3x3/2 forward": fwd, "3x3/2 grad_input": grad, "3x3/2 backward": both,
            "4x4/2 conv_transpose2d": transpose}


def main():
    threads = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 7
    clock = time.thread_time if threads == 1 else time.perf_counter
    if torch is not None:
        torch.set_num_threads(threads)
    for name, entries in cases().items():
        ab_rounds(f"threads={threads} {name}", entries, "A", "poly", threads, rounds, clock,
                  1e-5)


if __name__ == "__main__":
    main()
