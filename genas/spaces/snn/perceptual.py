"""Multi-scale perceptual distance on MobileNetV2 features (timm ``mobilenetv2_100``), never downloaded.

The source compares MobileNetV2 (ImageNet) features of an agent and its target and turns the mean
squared difference into a similarity ``1 / (1 + loss)``. Here the distance is LPIPS-like: images go
from [-1, 1] to ImageNet-normalised RGB at ``resolution`` (1-channel images are repeated to 3),
through the first ``levels`` feature stages of MobileNetV2 (strides 2, 4, 8, 16, 32: the scales),
each feature map is unit-normalised over channels at every position, and the distance is the mean
over positions of the squared difference, averaged over the levels. Identical images score 0.

The network comes from ``timm.create_model("mobilenetv2_100", pretrained=False, features_only=True)``
with the stages past the last level cut off (they would cost time and change nothing). Its weights:

- real ImageNet weights from a local file (safetensors or a torch state dict; what timm's
  ``mobilenetv2_100`` checkpoints hold) when the user gives one: the metric is ``perceptual_mnv2``;
- otherwise a random-weight network initialised from a fixed seed, the same on every machine and
  in every trial so scores compare: the metric is ``perceptual_mnv2rand``. Random convolutional
  features still measure local structure (edges, textures) at several scales, but they are not
  ImageNet's perception; the name says so.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from genas.errors import GenasError

ARCH = "mobilenetv2_100"
MAX_LEVELS = 5
RANDOM_SEED = 1_000_003  # the random-weight network is this seed's timm initialisation
RANDOM_METRIC = "perceptual_mnv2rand"
WEIGHTS_METRIC = "perceptual_mnv2"
OPTION = "perceptual_weights"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def feature_network(levels: int) -> nn.Module:
    """MobileNetV2's first ``levels`` feature stages, weights as timm initialises them (no download)."""
    import timm

    if not 1 <= levels <= MAX_LEVELS:
        raise GenasError(f"perceptual scales must be 1..{MAX_LEVELS}, got {levels}")
    net = timm.create_model(ARCH, pretrained=False, features_only=True, out_indices=tuple(range(levels)))
    # timm runs every block and keeps the requested outputs; the blocks past the last output are dead weight
    last_block = max(net._stage_out_idx)
    net.blocks = net.blocks[:last_block]
    return net.eval().requires_grad_(False)


def random_network(levels: int) -> nn.Module:
    """The fixed random-weight network: the same weights every time, without touching the global RNG."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(RANDOM_SEED)
        return feature_network(levels)


def read_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """A state dict from a local safetensors or torch file; GenasError naming the option otherwise."""
    path = Path(path).expanduser()
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            tensors = load_file(str(path))
        else:
            tensors = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - missing, unreadable or not a state dict: the same advice
        raise GenasError(f"option {OPTION}={path} cannot be read ({type(exc).__name__}); pass a local "
                         f"{ARCH} state dict (.safetensors or .pth), or leave the option out for the "
                         f"random-weight network") from None
    for key in ("state_dict", "model"):  # training checkpoints wrap the state dict
        if isinstance(tensors, dict) and isinstance(tensors.get(key), dict):
            tensors = tensors[key]
    if not isinstance(tensors, dict) or not all(isinstance(v, torch.Tensor) for v in tensors.values()):
        raise GenasError(f"option {OPTION}={path} does not hold a state dict of tensors; pass a {ARCH} state dict")
    return tensors


def load_into(net: nn.Module, tensors: dict[str, torch.Tensor], source: str) -> nn.Module:
    """Load the tensors ``net`` needs (a full classifier's extras are ignored); GenasError on any mismatch."""
    expected = net.state_dict()
    missing = sorted(set(expected) - set(tensors))
    wrong = sorted(k for k in set(expected) & set(tensors) if tuple(tensors[k].shape) != tuple(expected[k].shape))
    if missing or wrong:
        example = (missing or wrong)[0]
        raise GenasError(f"{source} is not {ARCH} weights ({len(missing)} tensors missing, {len(wrong)} with other "
                         f"shapes, e.g. {example}); pass timm's {ARCH} weights")
    net.load_state_dict({k: tensors[k].float() for k in expected})
    return net


class Perceptual(nn.Module):
    """Features and distances on one MobileNetV2: ``random`` (fixed seed) or real ``weights``."""

    def __init__(self, net: nn.Module, levels: int, resolution: int, kind: str) -> None:
        super().__init__()
        self.net, self.levels, self.resolution, self.kind = net, levels, resolution, kind
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    @classmethod
    def random(cls, levels: int, resolution: int) -> "Perceptual":
        return cls(random_network(levels), levels, resolution, "random")

    @classmethod
    def from_tensors(cls, tensors: dict[str, torch.Tensor], levels: int, resolution: int,
                     source: str = "the perceptual weights") -> "Perceptual":
        return cls(load_into(feature_network(levels), tensors, source), levels, resolution, "weights")

    @classmethod
    def from_file(cls, path: str | Path, levels: int, resolution: int) -> "Perceptual":
        return cls.from_tensors(read_weights(path), levels, resolution, f"option {OPTION}={path}")

    @property
    def metric(self) -> str:
        return WEIGHTS_METRIC if self.kind == "weights" else RANDOM_METRIC

    def weights(self) -> dict[str, torch.Tensor]:
        """The (truncated) network's tensors, for a generator that must rebuild real weights."""
        return {k: v.detach().float().cpu().contiguous() for k, v in self.net.state_dict().items()}

    @torch.no_grad()
    def features(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Unit-normalised feature maps of ``images`` ([-1, 1], [N, 1 or 3, H, W]), one per level."""
        x = (images.float() + 1) / 2
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        if x.shape[-1] != self.resolution:
            x = F.interpolate(x, size=(self.resolution, self.resolution), mode="bilinear",
                              align_corners=False, antialias=x.shape[-1] > self.resolution)
        x = (x - self.mean) / self.std
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=x.device.type == "cuda"):
            maps = self.net(x)
        return [F.normalize(f.float(), dim=1, eps=1e-6) for f in maps]

    @torch.no_grad()
    def distance(self, images: torch.Tensor, target_features: list[torch.Tensor]) -> torch.Tensor:
        """[N] distances from ``images`` to features of their targets (each [N or 1, C, h, w])."""
        per_level = [(f - t).pow(2).sum(1).mean((1, 2)) for f, t in zip(self.features(images), target_features)]
        return torch.stack(per_level).mean(0)
