"""Image files: listing a folder, checking every file, and reading them lazily.

Training decodes them one batch at a time (:class:`pipeline.image_batches.ImageBatches`), so a
folder larger than memory trains. Decoding, colour conversion and resizing/padding to
the declared size happen in :func:`load_image`, which the predict path uses too; the model
itself receives pixels of that size in 0..255 and rescales them with its first layer.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.errors import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
FILLS = {"black": 0, "white": 255}


class ImageError(DataError):
    """An image file cannot be used; the message names it."""


@dataclass(frozen=True)
class ImageSettings:
    """How every image is turned into a model input: size (height, width), colour, resize or pad."""

    height: int
    width: int
    color: str  # rgb | grayscale
    mode: str  # resize | pad (pad to square with `fill`, then resize) | none (sizes must match)
    fill: str  # black | white | noise

    @property
    def channels(self) -> int:
        return 1 if self.color == "grayscale" else 3

    @property
    def shape(self) -> list[int]:
        return [self.height, self.width, self.channels]

    def to_dict(self) -> dict:
        return {"height": self.height, "width": self.width, "color": self.color, "mode": self.mode, "fill": self.fill}


def is_image_name(name: str) -> bool:
    return str(name).lower().endswith(IMAGE_SUFFIXES)


def class_folders(root: Path) -> tuple[list[Path], list[str]]:
    """(files, class names) of a folder with one sub-folder per class."""
    if not root.is_dir():
        raise ImageError(f"data.path: image folder not found: {root}")
    files, labels = [], []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        if folder.is_symlink():
            raise ImageError(f"{folder}: a class folder that is a symbolic link; class folders are read as they "
                             "are, not through links (copy or move the images in)")
        found = sorted(p for p in folder.rglob("*") if p.is_file() and is_image_name(p.name))
        escaping = next((p for p in found if not p.resolve().is_relative_to(root.resolve())), None)
        if escaping is not None:
            raise ImageError(f"{escaping}: a link to a file outside {root}; images are read from under it only")
        if not found:
            raise ImageError(f"{folder}: the class folder '{folder.name}' holds no images "
                             f"({', '.join(IMAGE_SUFFIXES)}); add images or remove the folder")
        files += found
        labels += [folder.name] * len(found)
    if not files:
        loose = [p.name for p in root.iterdir() if p.is_file() and is_image_name(p.name)][:3]
        hint = f"; it holds images directly ({', '.join(loose)}...): give data.labels, a CSV of file,label" \
            if loose else ""
        raise ImageError(f"{root}: no images in class sub-folders ({', '.join(IMAGE_SUFFIXES)}){hint}")
    return files, labels


def image_size(path: Path) -> tuple[int, int]:
    """(height, width) from the file header; decodes the file fully to catch truncated data."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image.load()
            return image.height, image.width
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"{path}: not a readable image ({exc.__class__.__name__}: {exc})") from None


def check_images(files: list[Path]) -> list[tuple[int, int]]:
    """Every file opened and decoded once (one at a time), naming the first bad one."""
    if not files:
        raise ImageError("no image files found")
    return [image_size(path) for path in files]


def load_image(path, settings: ImageSettings, name: str | None = None) -> np.ndarray:
    """One image (a path, or a file-like object of its bytes) as float32 (height, width, channels),
    values 0..255. `name` names it in errors (default: the path)."""
    from PIL import Image

    label = name or str(path)
    try:
        with Image.open(path) as image:
            image = image.convert("L" if settings.color == "grayscale" else "RGB")
            if settings.mode == "pad" and image.width != image.height:
                image = _pad_to_square(image, settings.fill)
            if image.size != (settings.width, settings.height):
                if settings.mode == "none":
                    raise ImageError(f"{label}: size {image.height}x{image.width} differs from "
                                     f"{settings.height}x{settings.width} and data.image.mode is none")
                image = image.resize((settings.width, settings.height), Image.Resampling.BILINEAR)
            array = np.asarray(image, dtype="float32")
    except (OSError, SyntaxError, ValueError) as exc:
        if isinstance(exc, ImageError):
            raise
        raise ImageError(f"{label}: not a readable image ({exc.__class__.__name__})") from None
    return array[..., np.newaxis] if array.ndim == 2 else array


def _pad_to_square(image, fill: str):
    from PIL import Image

    side = max(image.size)
    if fill == "noise":
        # Seeded by the pixels: the same image gets the same padding wherever it is read from.
        rng = np.random.default_rng(zlib.crc32(image.tobytes()))
        bands = len(image.getbands())
        noise = rng.integers(0, 256, size=(side, side, bands) if bands > 1 else (side, side), dtype=np.uint8)
        canvas = Image.fromarray(noise, mode=image.mode)
    else:
        value = FILLS[fill]
        canvas = Image.new(image.mode, (side, side), value if image.mode == "L" else (value,) * 3)
    canvas.paste(image, ((side - image.width) // 2, (side - image.height) // 2))
    return canvas


@dataclass(frozen=True)
class ImageFiles:
    """A lazy array of images: file paths plus how to read them. Indexing returns another ImageFiles."""

    files: tuple[str, ...]
    settings: ImageSettings

    def __len__(self) -> int:
        return len(self.files)

    def take(self, indices) -> ImageFiles:
        return ImageFiles(tuple(self.files[i] for i in np.asarray(indices, dtype=int)), self.settings)

    @property
    def decoded_bytes(self) -> int:
        """The memory all the images take decoded (float32)."""
        return len(self) * int(np.prod(self.settings.shape)) * 4

    def read(self, indices=None) -> np.ndarray:
        """Decode some images (all when `indices` is None) into one array."""
        chosen = range(len(self)) if indices is None else indices
        return np.stack([load_image(Path(self.files[i]), self.settings) for i in chosen]) \
            if len(chosen) else np.zeros((0, *self.settings.shape), "float32")
