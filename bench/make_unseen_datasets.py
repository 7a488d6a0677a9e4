"""Datasets genas was not developed on, built from scikit-image's bundled samples, as ``.npz``.

    python bench/make_unseen_datasets.py OUT_DIR

- ``skimage-crops.npz``: 5,000 RGB 32x32 crops of five scikit-image photos (the astronaut, the cat
  ``chelsea``, ``coffee``, ``rocket``, ``motorcycle_left``), each shrunk to a quarter, a third and a
  half of its side like genas's ``photos``: faces, fur, a cup, sky, metal, in other colours.
- ``skimage-crops64.npz``: the same photos cut into 5,000 crops of 64x64, for the 64x64 search.
- ``lfw-faces.npz``: the 100 faces of ``skimage.data.lfw_subset()`` (25x25 grey; genas resizes
  them with ``npz:PATH@32``): a dataset of a hundred images, where D can memorise the data.

Pass them as ``--dataset npz:OUT_DIR/skimage-crops.npz`` (``skimage-crops64.npz``) and
``npz:OUT_DIR/lfw-faces.npz@32``.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "motorcycle_left")
CROPS = 5_000


def skimage_crops(side: int = 32) -> np.ndarray:
    import skimage.data

    from genas.data import photo_crops

    arrays = [skimage.data.stereo_motorcycle()[0] if name == "motorcycle_left" else getattr(skimage.data, name)()
              for name in PHOTOS]
    photos = [torch.from_numpy(np.asarray(a)[..., :3].copy()).permute(2, 0, 1) for a in arrays]
    return photo_crops(photos, CROPS, side=side).numpy()


def lfw_faces() -> np.ndarray:
    import skimage.data

    faces = skimage.data.lfw_subset()[:100]  # the first 100 are faces, the rest are not
    return np.round(faces * 255).clip(0, 255).astype(np.uint8)


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
    out.mkdir(parents=True, exist_ok=True)
    np.savez(out / "skimage-crops.npz", images=skimage_crops())
    np.savez(out / "skimage-crops64.npz", images=skimage_crops(64))
    np.savez(out / "lfw-faces.npz", images=lfw_faces())
    print(f"wrote skimage-crops.npz, skimage-crops64.npz and lfw-faces.npz to {out}")


if __name__ == "__main__":
    main()
