"""The classifiers p-diff generates parameters for, and which of their tensors are generated.

Architectures: the source's two small nets for whole-model generation (§3.3.4) and any timm
model for the subset case (§3.1). ``convnet3`` is three 3x3 convs of 32 channels and one linear
layer; unlike the source's it has a BatchNorm after each conv, so that the source's default
subset (the last two normalisation layers) exists in it too. ``mlp3`` is 50-25-10 with ReLU, as
in the source. timm models are built with ``pretrained=False`` (genas runs offline) for the
dataset's channels and resolution; ``vit_tiny`` is ``vit_tiny_patch16_224`` with ``img_size`` the
dataset's and a patch of 1/8 of it (the 16-pixel patch would leave a 32x32 image four tokens).

Subsets (which layers are generated): ``norm2`` = the last two normalisation layers in module
order (BatchNorm, LayerNorm, GroupNorm; the source's default); ``norms:I,J,...`` = the
normalisation layers at those positions (0 = the first, -1 = the last), e.g. ``norms:0,1`` for
the shallow pair of the source's Table 2b; ``all`` = every parameter. A generated BatchNorm
layer's running statistics (``running_mean``, ``running_var``) are generated with its weight and
bias: they are trained with them in stage 1 (batch norm in train mode) and belong to them.
``num_batches_tracked`` and everything outside the subset is the frozen rest.
"""
from __future__ import annotations

import torch
from torch import nn

from genas.errors import GenasError

OWN_ARCHS = ("convnet3", "mlp3")
TIMM_ALIASES = {"vit_tiny": "vit_tiny_patch16_224"}
SUBSETS = ("norm2", "norms:I,J,...", "all")
NUM_CLASSES = 10
NORMS = (nn.modules.batchnorm._BatchNorm, nn.LayerNorm, nn.GroupNorm)


def convnet3(channels: int, resolution: int, num_classes: int) -> nn.Sequential:
    """conv-BN-ReLU x3 (32 channels), 2x2 max-pool after the first two, then one linear layer."""
    layers: list[nn.Module] = []
    c_in, side = channels, resolution
    for i in range(3):
        layers += [nn.Conv2d(c_in, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU()]
        if i < 2 and side >= 4:
            layers.append(nn.MaxPool2d(2))
            side //= 2
        c_in = 32
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(32 * side * side, num_classes))


def mlp3(channels: int, resolution: int, num_classes: int) -> nn.Sequential:
    return nn.Sequential(nn.Flatten(), nn.Linear(channels * resolution * resolution, 50), nn.ReLU(),
                         nn.Linear(50, 25), nn.ReLU(), nn.Linear(25, num_classes))


def build_classifier(arch: str, channels: int, resolution: int, num_classes: int = NUM_CLASSES) -> nn.Module:
    """A freshly initialised classifier (use torch.manual_seed for a given init)."""
    if arch == "convnet3":
        return convnet3(channels, resolution, num_classes)
    if arch == "mlp3":
        return mlp3(channels, resolution, num_classes)
    import timm

    name = TIMM_ALIASES.get(arch, arch)
    if not timm.is_model(name):
        raise GenasError(f"timm does not know the architecture {arch!r}; use convnet3, mlp3, resnet18, vit_tiny, "
                         "convnext_tiny or a name from timm.list_models()")
    extra = {"img_size": resolution, "patch_size": max(resolution // 8, 1)} if name.startswith("vit_") else {}
    return timm.create_model(name, pretrained=False, num_classes=num_classes, in_chans=channels, **extra)


def check_arch(arch: str, subset: str, channels: int, resolution: int) -> None:
    """Raise GenasError unless ``arch`` builds, runs on [1, C, R, R] inputs and has ``subset``."""
    model = build_classifier(arch, channels, resolution)
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, channels, resolution, resolution))
    except Exception as exc:  # noqa: BLE001 - any failure means this arch does not fit the data
        raise GenasError(f"architecture {arch} does not run on {channels}x{resolution}x{resolution} inputs "
                         f"({str(exc).splitlines()[0][:120]}); use a larger dataset resolution or another arch") from None
    subset_names(model, subset, arch)


def norm_layers(model: nn.Module) -> list[str]:
    """Module names of the normalisation layers with an affine weight or bias, in module order."""
    return [name for name, m in model.named_modules()
            if isinstance(m, NORMS) and any(p is not None for p in (getattr(m, "weight", None), getattr(m, "bias", None)))]


def _chosen_norms(model: nn.Module, subset: str, arch: str) -> list[str]:
    norms, label = norm_layers(model), arch or type(model).__name__
    if subset == "norm2":
        if len(norms) < 2:
            raise GenasError(f"architecture {label} has {len(norms)} normalisation layers, "
                             "subset=norm2 needs two; use --set subset=all")
        return norms[-2:]
    if not subset.startswith("norms:"):
        raise GenasError(f"unknown subset {subset!r}; use norm2, norms:I,J (positions of normalisation layers) or all")
    try:
        picks = [int(p) for p in subset[len("norms:"):].split(",")]
    except ValueError:
        raise GenasError(f"subset {subset!r}: norms: takes comma-separated integers, e.g. norms:0,1") from None
    bad = [i for i in picks if not -len(norms) <= i < len(norms)]
    if bad or not norms:
        raise GenasError(f"subset {subset!r}: architecture {label} has {len(norms)} normalisation layers "
                         f"(positions {-len(norms)}..{len(norms) - 1}); choose positions in that range")
    chosen = {norms[i] for i in picks}
    if len(chosen) < len(picks):
        raise GenasError(f"subset {subset!r} names one layer twice; give each position once")
    return [n for n in norms if n in chosen]


def subset_names(model: nn.Module, subset: str, arch: str = "") -> list[str]:
    """The state-dict entries p-diff generates, in state-dict order: parameters and running statistics.

    ``num_batches_tracked`` is never generated (it only counts steps). GenasError for an unknown
    subset, positions out of range or too few normalisation layers.
    """
    entries = [k for k in model.state_dict() if not k.endswith("num_batches_tracked")]
    if subset == "all":
        return entries
    layers = set(_chosen_norms(model, subset, arch))
    return [k for k in entries if k.rsplit(".", 1)[0] in layers]


def generated_modules(model: nn.Module, names: list[str]) -> list[nn.Module]:
    """The modules owning a generated entry (put in train mode while the subset trains)."""
    owners = {n.rsplit(".", 1)[0] for n in names}
    return [m for name, m in model.named_modules() if name in owners]


def is_statistic(name: str) -> bool:
    """Whether a generated entry is a BatchNorm running statistic rather than a weight or bias."""
    return name.endswith(("running_mean", "running_var"))


def split_prefix(model: nn.Module, names: list[str]) -> tuple[nn.Module, nn.Module]:
    """(frozen prefix, head): the prefix holds no generated entry, so it needs no gradient.

    Only an ``nn.Sequential`` (convnet3, mlp3) is split at its first child holding a generated
    entry; any other model is all head. The prefix's BatchNorm layers stay in eval mode (they are
    frozen rest), so it is a fixed function: evaluating many generated models computes it once.
    Slicing a Sequential keeps its child names, so the head's entry names are the model's.
    """
    if not isinstance(model, nn.Sequential):
        return nn.Identity(), model
    first = min(int(name.split(".", 1)[0]) for name in names)
    return model[:first], model[first:]


def vector_of(model: nn.Module, names: list[str]) -> torch.Tensor:
    state = model.state_dict()
    return torch.cat([state[n].detach().float().reshape(-1) for n in names])


def unflatten(vector: torch.Tensor, names: list[str], shapes: list[list[int]]) -> dict[str, torch.Tensor]:
    """Named tensors from a flat vector; a generated running variance is clamped at 0 (BatchNorm adds eps)."""
    out, at = {}, 0
    for name, shape in zip(names, shapes):
        size = int(torch.Size(shape).numel())
        t = vector[at:at + size].reshape(shape)
        out[name] = t.clamp_min(0) if name.endswith("running_var") else t
        at += size
    return out
