"""``python -m cyconv bench``: time cyconv against SciPy, and PyTorch/OpenCV if installed.

Every contender's result is checked against cyconv's before anything is
timed. Times are medians of repeated runs in this process; a ratio is the
contender's time over cyconv's (above 1: cyconv is faster).
"""
import importlib
import json
import platform
import statistics
import sys
import time

import numpy as np
import scipy
import scipy.ndimage
import scipy.signal

import cyconv
from cyconv import _info

# Agreement tolerance by dtype, relative to the largest |value| of the result.
AGREE = {np.dtype(np.float32): 1e-4, np.dtype(np.float64): 1e-9}

# NCHW layers: (name, input shape, weight shape, stride, padding).
LAYERS = [
    ("conv3x3 32->64 56x56", (4, 32, 56, 56), (64, 32, 3, 3), 1, 1),
    ("conv3x3/2 64->128 28x28", (4, 64, 28, 28), (128, 64, 3, 3), 2, 1),
]
# Case sets: filtering kernel sizes, image side, layers, repeats, least seconds per timing.
CASE_SETS = {
    "standard": dict(kernels=(3, 5, 9, 15), size=512, layers=LAYERS, repeats=7, min_seconds=0.2),
    "quick": dict(kernels=(3, 9), size=512, layers=LAYERS[:1], repeats=3, min_seconds=0.05),
    # A smoke run of a few milliseconds, for the tests.
    "tiny": dict(kernels=(3,), size=48,
                 layers=[("conv3x3 4->8 12x12", (2, 4, 12, 12), (8, 4, 3, 3), 1, 1)],
                 repeats=1, min_seconds=0.0),
}


def median_time(fn, repeats, min_seconds, number=1):
    """Median wall time of ``fn()`` in seconds: at least ``repeats`` runs, and more
    (up to 20 times as many) until ``min_seconds`` have passed; one warm-up run first.

    Each run times ``number`` calls in a row and counts their mean, so that
    calls of a few microseconds are not lost in the clock's own overhead.
    """
    fn()
    calls = range(number)
    times = []
    start = time.perf_counter()
    while len(times) < repeats or (time.perf_counter() - start < min_seconds
                                   and len(times) < 20 * repeats):
        t0 = time.perf_counter()
        for _ in calls:
            fn()
        times.append((time.perf_counter() - t0) / number)
    return statistics.median(times)


def optional_import(name):
    """The module if it is installed, else None."""
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def numpy_conv2d(x, w, stride, padding):
    """Reference layer in plain NumPy: sliding windows, then one tensordot (a GEMM)."""
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    win = np.lib.stride_tricks.sliding_window_view(xp, w.shape[2:], axis=(2, 3))
    win = win[:, :, ::stride, ::stride]  # (N, C, Ho, Wo, kh, kw)
    return np.tensordot(win, w, axes=([1, 4, 5], [1, 2, 3])).transpose(0, 3, 1, 2)


def filtering_case(size, k, dtype, torch, cv2):
    """One 'same'-size image filtering case: (name, info, cyconv fn, {contender: fn})."""
    rng = np.random.default_rng(k)
    image = rng.standard_normal((size, size)).astype(dtype)
    kernel = rng.standard_normal((k, k)).astype(dtype)
    others = {
        "scipy.signal.correlate2d": lambda: scipy.signal.correlate2d(image, kernel, "same"),
        "scipy.signal.correlate": lambda: scipy.signal.correlate(image, kernel, "same"),
        "scipy.ndimage.correlate": lambda: scipy.ndimage.correlate(image, kernel,
                                                                   mode="constant"),
    }
    if torch is not None:
        timg, tker = torch.from_numpy(image)[None, None], torch.from_numpy(kernel)[None, None]
        others["torch conv2d"] = lambda: torch.nn.functional.conv2d(
            timg, tker, padding="same").numpy()[0, 0]
    if cv2 is not None:
        others["cv2.filter2D"] = lambda: cv2.filter2D(image, -1, kernel,
                                                      borderType=cv2.BORDER_CONSTANT)
    name = f"filter {size}x{size} {np.dtype(dtype).name} k={k}"
    info = dict(kind="filtering", dtype=np.dtype(dtype).name, input_shape=[size, size],
                weight_shape=[k, k], mode="same")
    return name, info, lambda: cyconv.correlate2d(image, kernel, "same"), others


def layer_case(layer, dtype, torch):
    """One NCHW layer case: cyconv.conv2d against NumPy (and torch if installed)."""
    name, xs, ws, stride, padding = layer
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal(xs).astype(dtype), rng.standard_normal(ws).astype(dtype)
    others = {"numpy sliding-window GEMM": lambda: numpy_conv2d(x, w, stride, padding)}
    if torch is not None:
        tx, tw = torch.from_numpy(x), torch.from_numpy(w)
        others["torch conv2d"] = lambda: torch.nn.functional.conv2d(
            tx, tw, stride=stride, padding=padding).numpy()
    info = dict(kind="layer", dtype=np.dtype(dtype).name, input_shape=list(xs),
                weight_shape=list(ws), stride=stride, padding=padding)
    return (f"layer {name} {np.dtype(dtype).name}", info,
            lambda: cyconv.conv2d(x, w, stride=stride, padding=padding), others)


def make_cases(case_set, torch, cv2):
    spec = CASE_SETS[case_set]
    cases = [filtering_case(spec["size"], k, dtype, torch, cv2)
             for dtype in (np.float64, np.float32) for k in spec["kernels"]]
    cases += [layer_case(layer, np.float32, torch) for layer in spec["layers"]]
    return cases


class Progress:
    """A one-line text progress bar on stderr, shown only when stderr is a terminal."""

    def __init__(self, total, stream=None):
        self.total, self.done, self.shown = total, 0, 0
        self.stream = sys.stderr if stream is None else stream
        self.enabled = self.stream.isatty()

    WIDTH = 16

    def step(self, label):
        """Show that item ``done + 1`` of ``total``, called ``label``, is running."""
        self.done += 1
        if self.enabled:
            filled = self.WIDTH * self.done // self.total
            bar = "#" * filled + "." * (self.WIDTH - filled)
            line = f"[{bar}] {self.done}/{self.total} {label[:52]:<52}"
            self.stream.write("\r" + line)
            self.stream.flush()
            self.shown = len(line)

    def close(self):
        """Erase the bar so that the table starts on a clean line."""
        if self.enabled:
            self.stream.write("\r" + " " * self.shown + "\r")
            self.stream.flush()


def check_agreement(name, expected, contender, result):
    """Raise RuntimeError if ``result`` differs from cyconv's ``expected`` beyond rounding."""
    expected = np.asarray(expected)
    result = np.asarray(result)
    if result.shape != expected.shape:
        raise RuntimeError(f"bench: {contender} gives shape {result.shape} on {name}, "
                           f"cyconv {expected.shape}")
    scale = float(np.abs(expected).max()) if expected.size else 0.0
    err = float(np.abs(result.astype(np.float64) - expected).max()) if expected.size else 0.0
    if err > AGREE[expected.dtype] * max(scale, 1.0):
        raise RuntimeError(f"bench: {contender} disagrees with cyconv on {name}: "
                           f"max |difference| {err:.3g} (largest |value| {scale:.3g})")


def run(case_set="standard", progress_stream=None):
    """Check, then time every case; returns the results as a JSON-ready dict."""
    spec = CASE_SETS[case_set]
    torch, cv2 = optional_import("torch"), optional_import("cv2")
    cases = make_cases(case_set, torch, cv2)
    progress = Progress(sum(1 + len(others) for *_, others in cases), progress_stream)
    results = []
    try:
        for name, info, ours, others in cases:
            expected = ours()
            for contender, fn in others.items():
                check_agreement(name, expected, contender, fn())
            times = {}
            for contender, fn in [("cyconv", ours), *others.items()]:
                progress.step(f"{contender}: {name}")
                times[contender] = median_time(fn, spec["repeats"], spec["min_seconds"])
            ratios = {c: t / times["cyconv"] for c, t in times.items() if c != "cyconv"}
            results.append(dict(name=name, **info, times=times, ratios=ratios))
    finally:
        progress.close()
    libraries, _ = _info.blas()
    return dict(
        cyconv=cyconv.__version__, numpy=np.__version__, scipy=scipy.__version__,
        torch=None if torch is None else torch.__version__,
        cv2=None if cv2 is None else cv2.__version__,
        torch_threads=None if torch is None else torch.get_num_threads(),
        cv2_threads=None if cv2 is None else cv2.getNumThreads(),
        kernel_threads=_info.kernel_threads(),
        blas=[f"{lib.get('internal_api')} {lib.get('version')} "
              f"({lib.get('num_threads')} threads)" for lib in libraries],
        machine=platform.machine(), case_set=case_set, repeats=spec["repeats"],
        unit="seconds (median)", cases=results)


def format_table(report):
    """The results as text: per case, cyconv's median ms, then each contender's and its ratio."""
    lines = [f"cyconv {report['cyconv']}, numpy {report['numpy']}, scipy {report['scipy']}, "
             f"torch {report['torch'] or 'not installed'}, "
             f"cv2 {report['cv2'] or 'not installed'}",
             f"threads: cyconv kernels {report['kernel_threads']}, "
             f"BLAS {', '.join(report['blas']) or 'unknown'}"
             + (f", torch {report['torch_threads']}" if report['torch'] else "")
             + (f", cv2 {report['cv2_threads']}" if report['cv2'] else ""),
             "ratio = contender time / cyconv time: above 1 means cyconv is faster", ""]
    cases = report["cases"]
    name_width = max([4] + [len(c["name"]) for c in cases])
    who_width = max([9] + [len(k) for c in cases for k in c["times"]])
    lines.append(f"{'case':<{name_width}}  {'contender':<{who_width}}  {'median ms':>10}  "
                 f"{'ratio':>7}")
    for case in cases:
        name = case["name"]
        for contender, seconds in case["times"].items():
            ratio = case["ratios"].get(contender)
            lines.append(f"{name:<{name_width}}  {contender:<{who_width}}  "
                         f"{seconds * 1e3:>10.3g}  "
                         + ("" if ratio is None else f"{ratio:>6.2f}x"))
            name = ""
    return "\n".join(line.rstrip() for line in lines)


def require_matplotlib():
    """matplotlib.pyplot with the Agg backend; SystemExit with the install hint if missing."""
    try:
        import matplotlib
    except ImportError:
        raise SystemExit("python -m cyconv bench: --plot needs matplotlib, which is not "
                         "installed: pip install 'cyconv[plot]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot(report, path, plt):
    """A horizontal bar chart of the ratios (log scale): one group of bars per case."""
    cases = report["cases"]
    contenders = sorted({c for case in cases for c in case["ratios"]})
    colors = {c: f"C{n}" for n, c in enumerate(contenders)}
    height = 0.8 / max(1, len(contenders))
    fig, ax = plt.subplots(figsize=(9, 1.5 + 0.25 * sum(len(c["ratios"]) for c in cases)))
    labelled = set()
    for i, case in enumerate(cases):
        present = [c for c in contenders if c in case["ratios"]]
        for j, contender in enumerate(present):
            ax.barh(i + (j - (len(present) - 1) / 2) * height, case["ratios"][contender],
                    height=height, color=colors[contender],
                    label=None if contender in labelled else contender)
            labelled.add(contender)
    ax.set_yticks(range(len(cases)), [case["name"] for case in cases], fontsize=8)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.set_xlabel("contender time / cyconv time (above 1: cyconv is faster)")
    ax.set_title(f"cyconv {report['cyconv']}: speed ratios, {report['case_set']} cases")
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(args):
    """Run the benchmark for parsed arguments (``quick``, ``tiny``, ``json``, ``plot``)."""
    plt = require_matplotlib() if args.plot else None  # fail before the long part
    case_set = "tiny" if args.tiny else "quick" if args.quick else "standard"
    try:
        report = run(case_set)
    except RuntimeError as exc:
        raise SystemExit(str(exc)) from None
    print(format_table(report))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
        print(f"\nwrote {args.json}")
    if plt is not None:
        plot(report, args.plot, plt)
        print(f"wrote {args.plot}")
