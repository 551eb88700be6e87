"""CelebA's aligned faces through torchvision, from a folder in torchvision's layout; never downloaded here."""
from pathlib import Path

from torch.utils.data import Dataset

from .images import image_transform


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
