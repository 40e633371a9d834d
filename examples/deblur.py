"""Deblur a photograph by least squares on cyconv's convolution operator.

The photograph is Grace Hopper's portrait that matplotlib ships in its wheel
(``matplotlib.cbook.get_sample_data``, no download). It is made grayscale and
small, blurred with a known Gaussian kernel by ``cyconv.conv2d`` (padding
'same', reflect padding mode), given a little Gaussian noise, and then
recovered by ``scipy.sparse.linalg.lsqr`` on ``cyconv.conv_operator`` with the
same kernel: lsqr only needs ``A @ x`` (one conv2d) and ``A.T @ y`` (one
conv2d_backward), never the matrix. A damping term and an iteration limit
keep the noise from being amplified (Tikhonov regularization and early
stopping).

Run it with the ``plot`` extra installed (``pip install 'cyconv[plot]'``):

    python examples/deblur.py [--size 128] [--save deblur.png]
"""
import argparse

import numpy as np
from scipy.sparse.linalg import lsqr

import cyconv

# The blur: padding 'same' keeps the image size, reflect mirrors the border.
BLUR = dict(padding="same", padding_mode="reflect")


def load_image(size=128):
    """Grace Hopper's portrait as a (size, size) float64 grayscale image in [0, 1].

    The 600x512 photograph is cropped to its central 512x512 square, made
    grayscale (ITU-R BT.601 luma) and shrunk by averaging blocks, so ``size``
    must divide 512.
    """
    import matplotlib.cbook
    import matplotlib.image

    if size < 1 or 512 % size:
        raise ValueError(f"load_image: size must divide 512, got {size}")
    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as f:
        rgb = matplotlib.image.imread(f, format="jpg")
    top = (rgb.shape[0] - 512) // 2
    gray = rgb[top:top + 512, :512] @ np.array([0.299, 0.587, 0.114]) / 255.0
    factor = 512 // size
    return gray.reshape(size, factor, size, factor).mean(axis=(1, 3))


def gaussian_kernel(size=7, sigma=1.5):
    """A (size, size) Gaussian kernel that sums to 1."""
    t = np.arange(size) - (size - 1) / 2
    g = np.exp(-t**2 / (2 * sigma**2))
    kernel = np.outer(g, g)
    return kernel / kernel.sum()


def blur(image, kernel, noise=0.005, seed=0):
    """``conv2d(image, kernel)`` (same size, reflect border) plus Gaussian noise of std ``noise``."""
    rng = np.random.default_rng(seed)
    blurred = cyconv.conv2d(image, kernel, **BLUR)
    return blurred + noise * rng.standard_normal(blurred.shape)


def deblur(blurred, kernel, iterations=100, damp=0.05):
    """Least-squares estimate of the sharp image: lsqr on the blur's operator.

    Minimizes ``|A x - blurred|^2 + damp^2 |x|^2`` over at most
    ``iterations`` lsqr steps, where ``A`` is ``cyconv.conv_operator`` of the
    kernel with the blur's padding. Returns the image and lsqr's iteration count.
    """
    op = cyconv.conv_operator(kernel, blurred.shape, **BLUR)
    result = lsqr(op, blurred.ravel(), damp=damp, iter_lim=iterations)
    return result[0].reshape(blurred.shape), result[2]


def psnr(reference, image, peak=1.0):
    """Peak signal-to-noise ratio in dB: 10 log10(peak^2 / mean squared error)."""
    mse = np.mean((np.asarray(image) - reference) ** 2)
    return 10 * np.log10(peak**2 / mse)


def run(size=128, kernel_size=7, sigma=1.5, noise=0.005, iterations=100, damp=0.05, seed=0):
    """Blur, then deblur; returns a dict of the images and their PSNRs against the original."""
    original = load_image(size)
    kernel = gaussian_kernel(kernel_size, sigma)
    blurred = blur(original, kernel, noise, seed)
    recovered, steps = deblur(blurred, kernel, iterations, damp)
    return dict(original=original, blurred=blurred, recovered=recovered, iterations=steps,
                psnr_blurred=psnr(original, blurred), psnr_recovered=psnr(original, recovered))


def save_figure(result, path):
    """Write the original, blurred and recovered images side by side to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(9, 3.4))
    for ax, (key, title) in zip(axes, [
            ("original", "original"),
            ("blurred", f"blurred + noise: {result['psnr_blurred']:.2f} dB"),
            ("recovered", f"lsqr: {result['psnr_recovered']:.2f} dB")]):
        ax.imshow(np.clip(result[key], 0, 1), cmap="gray", vmin=0, vmax=1)
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128, help="image side, divides 512")
    parser.add_argument("--kernel-size", type=int, default=7)
    parser.add_argument("--sigma", type=float, default=1.5, help="Gaussian blur width")
    parser.add_argument("--noise", type=float, default=0.005, help="noise std (image in [0, 1])")
    parser.add_argument("--iterations", type=int, default=100, help="lsqr iteration limit")
    parser.add_argument("--damp", type=float, default=0.05, help="lsqr damping")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--save", metavar="PNG", help="write the three images to this file")
    args = parser.parse_args(argv)
    result = run(args.size, args.kernel_size, args.sigma, args.noise, args.iterations,
                 args.damp, args.seed)
    print(f"{args.size}x{args.size} image, {args.kernel_size}x{args.kernel_size} Gaussian "
          f"blur (sigma {args.sigma}), noise std {args.noise}")
    print(f"PSNR blurred   vs original: {result['psnr_blurred']:6.2f} dB")
    print(f"PSNR recovered vs original: {result['psnr_recovered']:6.2f} dB "
          f"(lsqr, {result['iterations']} iterations, damp {args.damp})")
    if args.save:
        save_figure(result, args.save)
        print(f"wrote {args.save}")


if __name__ == "__main__":
    main()
