"""Two datasets genas was not developed on, built from scikit-image's bundled samples, as ``.npz``.

    python bench/make_unseen_datasets.py OUT_DIR

- ``skimage-crops.npz``: 5,000 RGB 32x32 crops of five scikit-image photos (the astronaut, the cat
  ``chelsea``, ``coffee``, ``rocket``, ``motorcycle_left``), each shrunk to a quarter, a third and a
  half of its side like genas's ``photos``: faces, fur, a cup, sky, metal, in other colours.
- ``lfw-faces.npz``: the 100 faces of ``skimage.data.lfw_subset()`` (25x25 grey; genas resizes
  them with ``npz:PATH@32``): a dataset of a hundred images, where D can memorise the data.

Pass them as ``--dataset npz:OUT_DIR/skimage-crops.npz`` and ``npz:OUT_DIR/lfw-faces.npz@32``.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "motorcycle_left")
CROPS, SIDE, SCALES = 5_000, 32, (0.25, 0.35, 0.5)


def skimage_crops() -> np.ndarray:
    import skimage.data

    arrays = [skimage.data.stereo_motorcycle()[0] if name == "motorcycle_left" else getattr(skimage.data, name)()
              for name in PHOTOS]
    photos = [torch.from_numpy(np.asarray(a)[..., :3].copy()).permute(2, 0, 1)[None].float() for a in arrays]
    levels = [F.interpolate(p, scale_factor=s, mode="area") for p in photos for s in SCALES]
    gen = torch.Generator().manual_seed(0)
    crops = []
    for i in range(CROPS):
        level = levels[i % len(levels)]
        top = int(torch.randint(level.shape[-2] - SIDE + 1, (1,), generator=gen))
        left = int(torch.randint(level.shape[-1] - SIDE + 1, (1,), generator=gen))
        crops.append(level[0, :, top:top + SIDE, left:left + SIDE])
    return torch.stack(crops).round().clamp(0, 255).to(torch.uint8).numpy()


def lfw_faces() -> np.ndarray:
    import skimage.data

    faces = skimage.data.lfw_subset()[:100]  # the first 100 are faces, the rest are not
    return np.round(faces * 255).clip(0, 255).astype(np.uint8)


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
    out.mkdir(parents=True, exist_ok=True)
    np.savez(out / "skimage-crops.npz", images=skimage_crops())
    np.savez(out / "lfw-faces.npz", images=lfw_faces())
    print(f"wrote {out / 'skimage-crops.npz'} and {out / 'lfw-faces.npz'}")


if __name__ == "__main__":
    main()
