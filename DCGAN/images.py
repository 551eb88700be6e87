"""Image files, and the transform every image data set shares."""

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


def image_transform(size: int):
    """Resize the short side to `size`, center-crop, pixels in [0, 1] (ToTensor, no normalisation)."""
    from torchvision import transforms
    return transforms.Compose([transforms.Resize(size), transforms.CenterCrop(size),
                               transforms.Lambda(lambda im: im.convert("RGB")), transforms.ToTensor()])
