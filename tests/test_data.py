"""Datasets by name: every source becomes float [-1, 1] NCHW with a power-of-two side."""
import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from genas.data import from_uint8, load_dataset, photo_crops, to_uint8
from genas.errors import GenasError


def test_mnist5k_is_padded_to_32():
    d = load_dataset("mnist5k")
    assert d.images.shape == (5000, 1, 32, 32)
    assert d.images.min() == -1 and d.images.max() == 1
    assert (d.images[:, :, :2, :] == -1).all()  # the padding is background


def test_digits_is_8x8():
    d = load_dataset("digits")
    assert d.images.shape == (1797, 1, 8, 8) and d.resolution == 8


def test_photo_crops_are_windows_of_each_photo_in_turn():
    # two photos whose pixels name their photo, row and column: a crop shows where it was cut
    rows, cols = torch.meshgrid(torch.arange(40), torch.arange(50), indexing="ij")
    photos = [torch.stack([torch.full_like(rows, k), rows, cols]).to(torch.uint8) for k in (7, 9)]
    crops = photo_crops(photos, 6, side=8, scales=(1.0,), seed=3)
    assert crops.shape == (6, 3, 8, 8) and crops.dtype == torch.uint8
    for i, crop in enumerate(crops):
        assert (crop[0] == (7, 9)[i % 2]).all()
        top, left = int(crop[1, 0, 0]), int(crop[2, 0, 0])
        assert torch.equal(crop, photos[i % 2][:, top:top + 8, left:left + 8])
    assert torch.equal(crops, photo_crops(photos, 6, side=8, scales=(1.0,), seed=3))
    assert not torch.equal(crops, photo_crops(photos, 6, side=8, scales=(1.0,), seed=4))
    halved = photo_crops(photos, 2, side=8, scales=(0.5,))  # shrunk first: a crop row spans two photo rows
    assert (halved[:, 1].float().diff(dim=-2) == 2).all()


def test_uint8_round_trip():
    x = torch.randint(0, 256, (4, 3, 8, 8), dtype=torch.uint8)
    assert torch.equal(to_uint8(from_uint8(x)), x)


def test_folder_of_images(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(5):
        Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(tmp_path / f"{i}.png")
    (tmp_path / "notes.txt").write_text("not an image")
    d = load_dataset(f"folder:{tmp_path}@16")
    assert d.images.shape == (5, 3, 16, 16) and d.channels == 3
    assert -1 <= d.images.min() and d.images.max() <= 1
    default = load_dataset(f"folder:{tmp_path}")
    assert default.resolution == 32  # the nearest power of two to the 40-pixel crop


def test_npz_and_cifar10(tmp_path):
    arr = np.random.default_rng(0).integers(0, 256, (6, 16, 16), dtype=np.uint8)
    np.savez(tmp_path / "x.npz", images=arr)
    d = load_dataset(f"npz:{tmp_path / 'x.npz'}")
    assert d.images.shape == (6, 1, 16, 16)
    assert torch.equal(d.uint8(), torch.from_numpy(arr)[:, None])

    folder = tmp_path / "cifar"
    folder.mkdir()
    batch = {b"data": np.random.default_rng(1).integers(0, 256, (3, 3072), dtype=np.uint8), b"labels": [7, 0, 3]}
    with open(folder / "data_batch_1", "wb") as fh:
        pickle.dump(batch, fh)
    c = load_dataset(f"cifar10:{folder}")
    assert c.images.shape == (3, 3, 32, 32)
    assert c.labels.tolist() == [7, 0, 3]


def test_labelled_datasets_keep_their_labels():
    for name, n in (("mnist5k", 5000), ("digits", 1797)):
        d = load_dataset(name)
        assert d.labels is not None and d.labels.shape == (n,) and set(d.labels.tolist()) == set(range(10))


def test_target_images(tmp_path):
    from PIL import Image

    d = load_dataset("image:astronaut")
    assert d.images.shape == (1, 3, 64, 64) and d.labels is None
    assert -1.0 <= float(d.images.min()) < float(d.images.max()) <= 1.0
    assert load_dataset("image:camera@32").images.shape == (1, 1, 32, 32)
    rgb = np.random.default_rng(2).integers(0, 256, (40, 60, 3), dtype=np.uint8)  # centre-cropped to 40x40
    Image.fromarray(rgb).save(tmp_path / "t.png")
    own = load_dataset(f"image:{tmp_path / 't.png'}@8")
    assert own.images.shape == (1, 3, 8, 8)
    (tmp_path / "bad.png").write_text("not an image")
    with pytest.raises(GenasError, match="cannot read target image"):
        load_dataset(f"image:{tmp_path / 'bad.png'}")


@pytest.mark.parametrize("name, words", [
    ("nosuch", "unknown dataset"), ("folder:", "unknown dataset"), ("cifar10:/nope", "CIFAR-10"),
    ("npz:/nope.npz", "does not exist"), ("image:/nope.png", "cannot read target image"),
])
def test_bad_names(name, words):
    with pytest.raises(GenasError, match=words):
        load_dataset(name)


def test_float_npz_is_refused(tmp_path):
    np.save(tmp_path / "f.npy", np.zeros((2, 8, 8), dtype=np.float32))
    with pytest.raises(GenasError, match="uint8"):
        load_dataset(f"npz:{tmp_path / 'f.npy'}")


def test_npz_side_goes_to_the_nearest_power_of_two_with_one_note(tmp_path, caplog):
    # 28x28 digits and 25x25 faces become 32x32 (the largest power of two inside would be 16)
    rng = np.random.default_rng(0)
    for side, expected in ((28, 32), (25, 32), (20, 16), (48, 64)):
        np.save(tmp_path / f"s{side}.npy", rng.integers(0, 256, (3, side, side), dtype=np.uint8))
        with caplog.at_level("WARNING", logger="genas.data"):
            caplog.clear()
            assert load_dataset(f"npz:{tmp_path / f's{side}.npy'}").resolution == expected
            assert f"{side}x{side} images resized to {expected}x{expected}" in caplog.text and "@" in caplog.text
            caplog.clear()
            load_dataset(f"npz:{tmp_path / f's{side}.npy'}")
            assert caplog.text == ""  # once per dataset, not once per trial
    assert load_dataset(f"npz:{tmp_path / 's28.npy'}@16").resolution == 16


def test_npz_is_centre_cropped_and_rgba_loses_alpha(tmp_path):
    wide = np.zeros((2, 8, 16, 4), dtype=np.uint8)  # NHWC, RGBA, 8 rows by 16 columns
    wide[:, :, 4:12, :3] = 255  # the centre square is white, the sides black
    wide[..., 3] = 7
    np.save(tmp_path / "wide.npy", wide)
    d = load_dataset(f"npz:{tmp_path / 'wide.npy'}")
    assert d.images.shape == (2, 3, 8, 8) and (d.uint8() == 255).all()
    np.save(tmp_path / "five.npy", np.zeros((2, 5, 8, 8), dtype=np.uint8))
    with pytest.raises(GenasError, match="channels"):
        load_dataset(f"npz:{tmp_path / 'five.npy'}")
    for empty in ((0, 8, 8), (2, 0, 0)):
        np.save(tmp_path / "empty.npy", np.zeros(empty, dtype=np.uint8))
        with pytest.raises(GenasError, match="no images"):
            load_dataset(f"npz:{tmp_path / 'empty.npy'}")
