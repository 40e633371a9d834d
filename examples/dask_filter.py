"""Filter an image larger than the memory its workers are given, disk to disk.

A ``dask.distributed.LocalCluster`` of worker processes, each with a
``memory_limit``, blurs a float32 image stored on disk as a ``.npy`` file
and writes the result to another ``.npy`` file: ``cyconv.dask.correlate2d``
reads each chunk with its halo through ``np.memmap`` (``np.load``'s
``mmap_mode``) and ``da.store`` writes each output chunk in place, so no
process ever holds the whole image. Dask's progress bar shows the two
passes (writing a synthetic input image, then filtering it), and the peak
memory (resident set) of every worker and of this process is printed at the
end.

Run it with the ``dask`` extra installed (``pip install 'cyconv[dask]'``):

    python examples/dask_filter.py                # 2048x2048 (16 MiB): seconds
    python examples/dask_filter.py --size 32768   # 4 GiB image, 2 workers of 512 MiB

Each worker runs one task at a time (``--threads 1``), and distributed
starts its worker processes with ``OMP_NUM_THREADS=1``, so cyconv's kernels
run on one thread per task: run as many workers as cores. The run
needs ``2 * size**2 * 4`` bytes of disk (input and output).
"""
import argparse
import os
import resource
import sys
import tempfile

import dask.array as da
import numpy as np
from dask.utils import parse_bytes
from distributed import Client, LocalCluster, progress

import cyconv.dask

MiB = 2**20


class NpyFile:
    """A 2-D ``.npy`` file read and written region by region through ``np.memmap``.

    ``da.from_array`` reads it (``x[key]``) and ``da.store`` writes it
    (``x[key] = value``); it pickles as its path, so each worker process maps
    the file itself and touches only the pages of its own chunks.
    """

    def __init__(self, path):
        self.path = os.fspath(path)
        header = np.load(self.path, mmap_mode="r")
        self.shape, self.dtype, self.ndim = header.shape, header.dtype, header.ndim

    @classmethod
    def create(cls, path, shape, dtype):
        """A new file of ``shape`` and ``dtype`` (sparse on disk until written)."""
        np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape).flush()
        return cls(path)

    def __getitem__(self, key):
        return np.array(np.load(self.path, mmap_mode="r")[key])

    def __setitem__(self, key, value):
        out = np.load(self.path, mmap_mode="r+")
        out[key] = value
        out.flush()


def binomial_kernel(size):
    """A (size, size) binomial blur (rows of Pascal's triangle, sum 1): a Gaussian
    of variance ``(size - 1) / 4`` in whole numbers over a power of two."""
    row = np.array([1.0])
    for _ in range(size - 1):
        row = np.convolve(row, [1.0, 1.0])
    return (np.outer(row, row) / row.sum() ** 2).astype(np.float32)


def peak_rss():
    """This process's peak resident set in bytes (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def run(client, array, target):
    """Store ``array`` into ``target`` on the cluster, with Dask's progress bar."""
    future = client.compute(da.store(array, target, lock=False, compute=False))
    progress(future)
    print()
    future.result()


def filter_on_disk(client, directory, size, chunk, kernel, seed=0):
    """Write a random ``size`` x ``size`` float32 image to ``directory``/input.npy,
    then its 'same' correlation with ``kernel`` (symmetric border) to output.npy."""
    source = NpyFile.create(os.path.join(directory, "input.npy"), (size, size), np.float32)
    noise = da.random.default_rng(seed).random((size, size), chunks=chunk, dtype=np.float32)
    print(f"writing a {size}x{size} float32 image ({size * size * 4 / MiB:.0f} MiB) "
          f"to {source.path}")
    run(client, noise, source)
    image = da.from_array(NpyFile(source.path), chunks=chunk)
    blurred = cyconv.dask.correlate2d(image, kernel, mode="same", boundary="symm")
    target = NpyFile.create(os.path.join(directory, "output.npy"), blurred.shape,
                            blurred.dtype)
    print(f"filtering with a {kernel.shape[0]}x{kernel.shape[1]} kernel into {target.path}")
    run(client, blurred, target)
    return source.path, target.path


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=2048, help="image side (default 2048)")
    parser.add_argument("--chunk", type=int, default=512, help="chunk side (default 512)")
    parser.add_argument("--kernel", type=int, default=9, help="kernel side (default 9)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--threads", type=int, default=1,
                        help="tasks at once per worker (default 1)")
    parser.add_argument("--memory-limit", default="512MiB",
                        help="memory of each worker (default 512MiB)")
    parser.add_argument("--dir", help="where input.npy and output.npy go "
                                      "(default: a temporary directory, removed at the end)")
    args = parser.parse_args(argv)
    if min(args.size, args.chunk, args.kernel, args.workers, args.threads) < 1:
        parser.error("--size, --chunk, --kernel, --workers and --threads must be positive")
    kernel = binomial_kernel(args.kernel)
    with tempfile.TemporaryDirectory() as scratch, \
            LocalCluster(n_workers=args.workers, threads_per_worker=args.threads,
                         processes=True, memory_limit=args.memory_limit,
                         dashboard_address=None) as cluster, \
            Client(cluster) as client:
        directory = args.dir or scratch
        filter_on_disk(client, directory, args.size, args.chunk, kernel)
        peaks = client.run(peak_rss)
    image, given = args.size**2 * 4, args.workers * parse_bytes(args.memory_limit)
    print(f"image {image / MiB:.0f} MiB; {args.workers} workers of {args.memory_limit}, "
          f"{given / MiB:.0f} MiB together: the image is "
          + ("larger" if image > given else "smaller (a larger --size shows it larger)"))
    for address, peak in sorted(peaks.items()):
        print(f"peak memory of worker {address}: {peak / MiB:.0f} MiB")
    print(f"peak memory of this process: {peak_rss() / MiB:.0f} MiB")


if __name__ == "__main__":
    main()
