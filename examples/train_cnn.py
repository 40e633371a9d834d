"""Train a small CNN on scikit-learn's bundled 8x8 digits with NumPy and cyconv.

The network, in NCHW and float32::

    input (N, 1, 8, 8)
    -> conv2d 1->8, 3x3, padding 1  -> ReLU -> max_pool2d 2x2   (N, 8, 4, 4)
    -> conv2d 8->16, 3x3, padding 1 -> ReLU -> avg_pool2d 2x2   (N, 16, 2, 2)
    -> flatten (N, 64) -> linear 64->10 -> softmax cross-entropy

The convolutions and poolings, forward and backward, are cyconv's
(`conv2d`, `conv2d_backward`, `max_pool2d` with ``return_indices=True``,
`max_pool2d_backward`, `avg_pool2d`, `avg_pool2d_backward`); ReLU, the
linear layer and the softmax are NumPy. Training is plain minibatch SGD
(no momentum, no weight decay) on a seeded, stratified 75/25 train/test split.
The data ship with scikit-learn, so nothing is downloaded::

    pip install 'cyconv[examples]'     # cyconv plus scikit-learn
    python examples/train_cnn.py       # --epochs, --batch-size, --lr, --seed

The functions are importable: tests/test_examples.py runs `train` for a few
epochs and checks `backward` against finite differences of `loss`.
"""
import argparse
import time
from typing import NamedTuple

import numpy as np

import cyconv

PADDING = 1  # 3x3 kernels with padding 1 keep the 8x8 and 4x4 sizes
POOL = 2     # 2x2 windows, stride 2
CHANNELS = (1, 8, 16)
CLASSES = 10
FEATURES = CHANNELS[-1] * 2 * 2  # 16 channels of 2x2 after the second pooling


class TrainResult(NamedTuple):
    """What `train` returns: the final test accuracy and the training wall time."""

    test_accuracy: float
    seconds: float


def load_data(seed=0, test_size=0.25):
    """The 1797 digits as float32 NCHW images in [0, 1], split into train and test.

    Returns ``(x_train, x_test, y_train, y_test)``: images of shape
    ``(N, 1, 8, 8)`` and int64 labels 0-9. The split is stratified by label
    and seeded, so a seed always gives the same split.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    # Pixel values are the integers 0..16.
    x = (digits.images / 16.0).astype(np.float32)[:, None, :, :]
    y = digits.target.astype(np.int64)
    return train_test_split(x, y, test_size=test_size, random_state=seed, stratify=y)


def init_params(seed=0, dtype=np.float32):
    """He-initialized weights (normal, variance 2/fan_in) and zero biases."""
    rng = np.random.default_rng(seed)

    def he(shape, fan_in):
        return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(dtype)

    c0, c1, c2 = CHANNELS
    return {
        "w1": he((c1, c0, 3, 3), c0 * 9), "b1": np.zeros(c1, dtype),
        "w2": he((c2, c1, 3, 3), c1 * 9), "b2": np.zeros(c2, dtype),
        "w3": he((FEATURES, CLASSES), FEATURES), "b3": np.zeros(CLASSES, dtype),
    }


def forward(params, x):
    """Logits ``(N, 10)`` for images ``x`` ``(N, 1, 8, 8)``, and the cache `backward` needs."""
    z1 = cyconv.conv2d(x, params["w1"], params["b1"], padding=PADDING)
    a1 = np.maximum(z1, 0)
    p1, idx1 = cyconv.max_pool2d(a1, POOL, return_indices=True)
    z2 = cyconv.conv2d(p1, params["w2"], params["b2"], padding=PADDING)
    a2 = np.maximum(z2, 0)
    p2 = cyconv.avg_pool2d(a2, POOL)
    flat = p2.reshape(len(x), -1)
    logits = flat @ params["w3"] + params["b3"]
    cache = dict(x=x, z1=z1, a1=a1, idx1=idx1, p1=p1, z2=z2, a2=a2, p2=p2, flat=flat)
    return logits, cache


def softmax_cross_entropy(logits, y):
    """Mean cross-entropy of ``softmax(logits)`` against labels ``y``, and its gradient."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    n = len(y)
    loss = -log_p[np.arange(n), y].mean()
    grad = np.exp(log_p)
    grad[np.arange(n), y] -= 1
    return float(loss), grad / n


def backward(params, cache, grad_logits):
    """Gradients of the loss with respect to every parameter, given ``dL/dlogits``."""
    g = {}
    g["w3"] = cache["flat"].T @ grad_logits
    g["b3"] = grad_logits.sum(axis=0)
    grad_p2 = (grad_logits @ params["w3"].T).reshape(cache["p2"].shape)
    grad_a2 = cyconv.avg_pool2d_backward(grad_p2, cache["a2"].shape, POOL)
    grad_z2 = grad_a2 * (cache["z2"] > 0)
    grad_p1, g["w2"], g["b2"] = cyconv.conv2d_backward(
        grad_z2, cache["p1"], params["w2"], padding=PADDING)
    grad_a1 = cyconv.max_pool2d_backward(grad_p1, cache["idx1"], cache["a1"].shape)
    grad_z1 = grad_a1 * (cache["z1"] > 0)
    # The input needs no gradient: skip that GEMM and col2im.
    _, g["w1"], g["b1"] = cyconv.conv2d_backward(
        grad_z1, cache["x"], params["w1"], padding=PADDING,
        output_mask=(False, True, True))
    return g


def loss(params, x, y):
    """The mean cross-entropy of the network on ``(x, y)``."""
    return softmax_cross_entropy(forward(params, x)[0], y)[0]


def predict(params, x, batch_size=256):
    """Predicted labels for images ``x``."""
    return np.concatenate([forward(params, x[i:i + batch_size])[0].argmax(axis=1)
                           for i in range(0, len(x), batch_size)])


def accuracy(params, x, y):
    """Fraction of ``x`` classified as ``y``."""
    return float(np.mean(predict(params, x) == y))


def train(epochs=30, batch_size=16, lr=0.2, seed=0, verbose=True):
    """Train with plain minibatch SGD; return the `TrainResult` on the test set.

    ``seed`` fixes the train/test split, the initial weights and the batch
    order, so a run is repeatable. ``seconds`` is the wall time of the
    epochs, including the per-epoch evaluation printed when ``verbose``.
    """
    x_train, x_test, y_train, y_test = load_data(seed)
    if not 1 <= batch_size <= len(x_train):
        raise ValueError(f"batch_size must be in [1, {len(x_train)}], got {batch_size}")
    params = init_params(seed)
    rng = np.random.default_rng(seed)
    start = time.perf_counter()
    for epoch in range(1, epochs + 1):
        # Full batches only: a last batch of a few samples gives a noisy mean
        # gradient that the full step size would apply (1347 = 84*16 + 3); it
        # made test accuracy swing by tens of points from epoch to epoch.
        order = rng.permutation(len(x_train))
        n_used = len(order) - len(order) % batch_size
        total = 0.0
        for i in range(0, n_used, batch_size):
            batch = order[i:i + batch_size]
            logits, cache = forward(params, x_train[batch])
            batch_loss, grad_logits = softmax_cross_entropy(logits, y_train[batch])
            grads = backward(params, cache, grad_logits)
            for name, grad in grads.items():
                params[name] -= lr * grad
            total += batch_loss * len(batch)
        if verbose:
            print(f"epoch {epoch:3d}  train loss {total / n_used:.4f}  "
                  f"train acc {accuracy(params, x_train, y_train):.4f}  "
                  f"test acc {accuracy(params, x_test, y_test):.4f}")
    test_accuracy = accuracy(params, x_test, y_test)
    seconds = time.perf_counter() - start
    return TrainResult(test_accuracy, seconds)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    result = train(args.epochs, args.batch_size, args.lr, args.seed)
    print(f"test accuracy {result.test_accuracy:.4f} after {args.epochs} epochs "
          f"in {result.seconds:.1f} s")


if __name__ == "__main__":
    main()
