"""Feature extractors for FID/KID: a name -> factory registry.

``inception`` is the standard FID network (torch-fidelity's port of the 2015 TF graph, 2048-d pool
features); ``digitnet`` is a small digit classifier that ships with genas, so digit datasets can be
scored offline. An extractor turns uint8 NCHW images into float32 [N, D] features on the CPU.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from genas.errors import GenasError

log = logging.getLogger(__name__)

WEIGHTS_DIR = Path(__file__).parent / "weights"
DIGITNET_WEIGHTS = WEIGHTS_DIR / "digitnet.safetensors"
DIGITNET_INFO = WEIGHTS_DIR / "digitnet.json"

# torch-fidelity's port of the TF FID Inception, the file its own download puts in torch hub's cache.
INCEPTION_FILE = "weights-inception-2015-12-05-6726825d.pth"
INCEPTION_URL = "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/" + INCEPTION_FILE
DOWNLOAD_TIMEOUT_S = 20.0


class Extractor(ABC):
    """Maps uint8 images [N, C, H, W] to float32 features [N, dim] on the CPU."""

    name: str
    dim: int
    version: str  # part of the real-statistics cache key: changes when the weights change

    def __init__(self, device: torch.device | str = "cpu", batch_size: int = 256) -> None:
        self.device = torch.device(device)
        self.batch_size = batch_size

    @abstractmethod
    def _forward(self, batch: torch.Tensor) -> torch.Tensor:
        """A uint8 batch already on ``self.device`` -> features [B, dim]."""

    @torch.no_grad()
    def features(self, images: torch.Tensor) -> torch.Tensor:
        if images.dtype != torch.uint8 or images.dim() != 4:
            raise GenasError(f"extractor {self.name} expects uint8 images [N, C, H, W], got {images.dtype} "
                             f"{tuple(images.shape)}; convert with genas.data.to_uint8")
        out = [self._forward(images[i:i + self.batch_size].to(self.device, non_blocking=True)).float().cpu()
               for i in range(0, len(images), self.batch_size)]
        return torch.cat(out) if out else torch.empty(0, self.dim)


# --------------------------------------------------------------------------------------------- digitnet

class DigitNet(nn.Module):
    """A small CNN for 32x32 grayscale digits; ``embed`` is the 128-d penultimate layer."""

    feature_dim = 128

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, padding=1)
        self.conv2 = nn.Conv2d(32, 64, 3, padding=1)
        self.conv3 = nn.Conv2d(64, 128, 3, padding=1)
        self.fc1 = nn.Linear(128 * 4 * 4, self.feature_dim)
        self.fc2 = nn.Linear(self.feature_dim, 10)
        self.dropout = nn.Dropout(0.3)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = F.max_pool2d(F.relu(self.conv3(x)), 2)
        return F.relu(self.fc1(x.flatten(1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.dropout(self.embed(x)))


def digitnet_input(images: torch.Tensor) -> torch.Tensor:
    """uint8 [N, C, H, W] -> float [N, 1, 32, 32] in [-1, 1], the scaling genas datasets use."""
    x = images.float() / 127.5 - 1
    if x.shape[1] == 3:
        x = (x * torch.tensor([0.299, 0.587, 0.114], device=x.device).view(1, 3, 1, 1)).sum(1, keepdim=True)
    elif x.shape[1] != 1:
        raise GenasError(f"digitnet takes 1- or 3-channel images, got {x.shape[1]} channels")
    if x.shape[-2:] != (32, 32):
        # antialias only matters when shrinking; upscaling (e.g. 8x8 digits) stays bilinear
        x = F.interpolate(x, size=(32, 32), mode="bilinear", align_corners=False,
                          antialias=x.shape[-1] > 32)
    return x


class DigitNetExtractor(Extractor):
    name = "digitnet"
    dim = DigitNet.feature_dim

    def __init__(self, device: torch.device | str = "cpu", batch_size: int = 512) -> None:
        super().__init__(device, batch_size)
        from safetensors.torch import load_file

        if not DIGITNET_WEIGHTS.is_file():
            raise GenasError(f"digitnet weights {DIGITNET_WEIGHTS} are missing; reinstall genas or "
                             "regenerate them with `python scripts/train_digitnet.py`")
        self.version = hashlib.sha256(DIGITNET_WEIGHTS.read_bytes()).hexdigest()[:10]
        self.net = DigitNet()
        self.net.load_state_dict(load_file(str(DIGITNET_WEIGHTS)))
        self.net.eval().to(self.device)

    def _forward(self, batch: torch.Tensor) -> torch.Tensor:
        return self.net.embed(digitnet_input(batch))


def digitnet_info() -> dict:
    """What scripts/train_digitnet.py recorded (held-out accuracy, split, seed)."""
    return json.loads(DIGITNET_INFO.read_text()) if DIGITNET_INFO.is_file() else {}


# -------------------------------------------------------------------------------------------- inception

def inception_weights_path() -> Path | None:
    """The local Inception weights file, or None when torch-fidelity must download them."""
    env = os.environ.get("GENAS_INCEPTION_WEIGHTS")
    if env:
        path = Path(env).expanduser()
        if not path.is_file():
            raise GenasError(f"GENAS_INCEPTION_WEIGHTS={env} is not a file; point it at {INCEPTION_FILE} "
                             f"(from {INCEPTION_URL}) or unset it")
        return path
    checkpoints = Path(torch.hub.get_dir()) / "checkpoints"
    return checkpoints / INCEPTION_FILE if (checkpoints / INCEPTION_FILE).is_file() else None


def _missing_inception(reason: str) -> GenasError:
    checkpoints = Path(torch.hub.get_dir()) / "checkpoints"
    return GenasError(
        f"the Inception weights {INCEPTION_FILE} are not on this machine and could not be downloaded "
        f"({reason}); download {INCEPTION_URL} and save it as {checkpoints / INCEPTION_FILE}, "
        f"or set GENAS_INCEPTION_WEIGHTS=/path/to/{INCEPTION_FILE}")


def _build_inception(path: Path | None) -> nn.Module:
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    if path is not None:
        # torch-fidelity unpickles the file with weights_only=False; refusing anything the restricted
        # loader rejects first means only plain tensors ever reach the full unpickler.
        try:
            torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - any failure means the file is not usable weights
            raise GenasError(f"{path} is not a valid Inception state dict ({exc}); "
                             f"re-download {INCEPTION_URL}") from exc
        return FeatureExtractorInceptionV3("inception-v3-compat", ["2048"],
                                           feature_extractor_weights_path=str(path))
    # Offline, the download can stall on connect instead of failing; bound it.
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        return FeatureExtractorInceptionV3("inception-v3-compat", ["2048"], verbose=False)
    except Exception as exc:  # noqa: BLE001 - network, HTTP, hash and disk errors all mean "not available"
        raise _missing_inception(f"{type(exc).__name__}: {exc}".splitlines()[0][:200]) from exc
    finally:
        socket.setdefaulttimeout(previous)


_digests: dict[tuple[str, int, int], str] = {}


def file_digest(path: Path) -> str:
    """The first 16 hex digits of the file's SHA-256, computed once per process per (path, size, mtime)."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _digests:
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        _digests[key] = h.hexdigest()[:16]
    return _digests[key]


class InceptionExtractor(Extractor):
    name = "inception"
    dim = 2048
    version = "2015-12-05-6726825d"  # replaced by the weights file's own digest once it is known

    def __init__(self, device: torch.device | str = "cpu", batch_size: int = 64) -> None:
        super().__init__(device, batch_size)
        self.net = _build_inception(inception_weights_path()).to(self.device).eval()
        # Key the real-statistics cache on the weights actually loaded: GENAS_INCEPTION_WEIGHTS may
        # name another file than the standard one (and torch-fidelity's download lands in the hub).
        path = inception_weights_path()
        if path is not None:
            self.version = f"sha256-{file_digest(path)}"

    def _forward(self, batch: torch.Tensor) -> torch.Tensor:
        if batch.shape[1] == 1:
            batch = batch.expand(-1, 3, -1, -1)
        elif batch.shape[1] != 3:
            raise GenasError(f"inception takes 1- or 3-channel images, got {batch.shape[1]} channels")
        return self.net(batch.contiguous())[0]


# ------------------------------------------------------------------------------------------------ registry

EXTRACTORS: dict[str, Callable[..., Extractor]] = {
    "inception": InceptionExtractor,
    "digitnet": DigitNetExtractor,
}
_instances: dict[tuple[str, str], Extractor] = {}


def register_extractor(name: str, factory: Callable[..., Extractor]) -> None:
    """Add an extractor; it becomes available as ``fid_<name>`` and ``kid_<name>``."""
    if not name.isidentifier() or name.startswith("_"):
        raise ValueError(f"extractor name {name!r} must be an identifier without a leading underscore")
    EXTRACTORS[name] = factory
    for key in [k for k in _instances if k[0] == name]:
        del _instances[key]


def get_extractor(name: str, device: torch.device | str = "cpu") -> Extractor:
    """A shared instance per (name, device): trials in one process load the weights once."""
    if name not in EXTRACTORS:
        raise GenasError(f"unknown feature extractor {name!r}; use one of {', '.join(sorted(EXTRACTORS))}")
    key = (name, str(torch.device(device)))
    if key not in _instances:
        log.info("loading feature extractor %s on %s", name, key[1])
        _instances[key] = EXTRACTORS[name](device=device)
    return _instances[key]
