"""examples/dask_filter.py: run small, its output file is the in-memory filter of its input file.

The script runs as users run it, in a process of its own (its LocalCluster
starts worker processes, and distributed's nanny leaves its settings in the
parent's environment).
"""
import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest
import scipy.special

pytest.importorskip("dask.array")
pytest.importorskip("distributed")

import cyconv  # noqa: E402

SCRIPT = pathlib.Path(__file__).parent.parent / "examples" / "dask_filter.py"


def test_filters_disk_to_disk(tmp_path):
    # Uneven chunks: 300 = 128 + 128 + 44.
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--size", "300", "--chunk", "128", "--kernel", "7",
         "--dir", str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    image = np.load(tmp_path / "input.npy")
    out = np.load(tmp_path / "output.npy")
    assert image.shape == out.shape == (300, 300) and out.dtype == np.float32
    assert image.std() > 0.2  # the input was written: uniform noise, std 0.29
    row = scipy.special.binom(6, np.arange(7)) / 2**6  # the script's 7x7 binomial blur
    want = cyconv.correlate2d(image, np.outer(row, row).astype(np.float32), "same", "symm")
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-6)
    peaks = re.findall(r"peak memory of worker \S+: (\d+) MiB", proc.stdout)
    assert len(peaks) == 2 and all(int(p) > 0 for p in peaks)
