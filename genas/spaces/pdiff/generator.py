"""The trained p-diff generator: EMA denoiser -> DDPM latents -> decoder -> subset parameters -> classifiers.

Its state holds only what sampling needs: the frozen rest of the classifier (every tensor of the
base model's state dict that is not generated: the BatchNorm statistics of the layers that are
not generated included; a generated layer's statistics are in each generated vector), the
decoder, the EMA denoiser, the standardisation (mean, scale) of the vectors, the latent shape
and scale, and the diffusion schedule. ``k`` (checkpoints trained on) is kept as provenance only.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from genas.errors import GenasError
from genas.spaces.generators import check_space
from genas.spaces.pdiff.autoencoder import ParamDecoder, decode_to_parameters
from genas.spaces.pdiff.classifiers import build_classifier, unflatten
from genas.spaces.pdiff.diffusion import Denoiser1d, Schedule, sample_latents

SAMPLE_BATCH = 256
SPACE = "pdiff"


@dataclass(frozen=True)
class Classifier:
    """Which classifier the parameters belong to, and where in it they go."""

    arch: str
    subset: str
    channels: int
    resolution: int
    num_classes: int
    names: list[str]
    shapes: list[list[int]]

    @property
    def dim(self) -> int:
        return sum(int(torch.Size(s).numel()) for s in self.shapes)

    def build(self) -> nn.Module:
        return build_classifier(self.arch, self.channels, self.resolution, self.num_classes)


class PDiffGenerator:
    """``sample(n, seed)`` -> float32 [n, D] parameter vectors; ``sample_models`` -> ready classifiers."""

    outputs = "parameters"
    space_name = SPACE

    def __init__(self, classifier: Classifier, frozen: dict[str, torch.Tensor], decoder: ParamDecoder,
                 denoiser: Denoiser1d, mean: torch.Tensor, scale: torch.Tensor, latent_shape: tuple[int, int],
                 latent_scale: float, schedule: Schedule, arch: dict) -> None:
        self.classifier, self.frozen = classifier, frozen
        self.decoder, self.denoiser = decoder.eval().requires_grad_(False), denoiser.eval().requires_grad_(False)
        self.mean, self.scale = mean, scale
        self.latent_shape, self.latent_scale, self.schedule = tuple(latent_shape), float(latent_scale), schedule
        self.arch = arch  # autoencoder/denoiser sizes and k: {"depth", "channels", "latent_channels", "width", "blocks", "k"}

    @torch.no_grad()
    def sample(self, n: int, seed: int | None = None) -> torch.Tensor:
        """``n`` parameter vectors [n, D]; the same seed gives the same vectors, and vector i is the same for any n."""
        # One generator per model (seeded from ``seed`` and its index): model i is the same for any n.
        base = int(seed) if seed is not None else int(torch.seed()) % 2**40
        gens = [torch.Generator().manual_seed(base * 1_000_003 + i) for i in range(n)]
        device = next(self.decoder.parameters()).device
        out = []
        for start in range(0, n, SAMPLE_BATCH):
            z = sample_latents(self.denoiser, self.schedule, self.latent_shape, gens[start:start + SAMPLE_BATCH])
            out.append(decode_to_parameters(self.decoder, z * self.latent_scale, self.mean.to(device),
                                            self.scale.to(device)).float().cpu())
        return torch.cat(out) if out else torch.zeros(0, self.classifier.dim)

    def models_from(self, vectors: torch.Tensor) -> list[nn.Module]:
        """Classifiers (eval mode, CPU) with the frozen rest and each vector as the generated subset."""
        c, models = self.classifier, []
        for v in vectors:
            model = c.build()
            model.load_state_dict({**self.frozen, **unflatten(v.float(), c.names, c.shapes)})
            models.append(model.eval())
        return models

    def sample_models(self, n: int, seed: int | None = None) -> list[nn.Module]:
        return self.models_from(self.sample(n, seed))

    def state(self) -> tuple[dict, dict[str, torch.Tensor]]:
        tensors = {f"frozen.{k}": v for k, v in self.frozen.items()}
        tensors.update({f"decoder.{k}": v for k, v in self.decoder.state_dict().items()})
        tensors.update({f"denoiser.{k}": v for k, v in self.denoiser.state_dict().items()})
        tensors.update({"norm.mean": self.mean, "norm.scale": self.scale.reshape(-1)})
        tensors = {k: v.detach().float().cpu().contiguous() for k, v in tensors.items()}
        config = {"space": SPACE, "classifier": self.classifier.__dict__, "arch": self.arch,
                  "latent_shape": list(self.latent_shape), "latent_scale": self.latent_scale,
                  "schedule": self.schedule.__dict__}
        return config, tensors

    @classmethod
    def from_state(cls, config: dict, tensors: dict[str, torch.Tensor]) -> "PDiffGenerator":
        check_space(config, SPACE)
        try:
            classifier = Classifier(**config["classifier"])
            arch, schedule = dict(config["arch"]), Schedule(**config["schedule"])
            latent_shape, latent_scale = tuple(config["latent_shape"]), float(config["latent_scale"])
            decoder = ParamDecoder(arch["depth"], arch["channels"], arch["latent_channels"])
            denoiser = Denoiser1d(arch["latent_channels"], arch["width"], arch["blocks"])
        except (KeyError, TypeError, ValueError) as exc:
            raise GenasError(f"the pdiff checkpoint config is incomplete ({type(exc).__name__}: {exc}); "
                             "re-export it from its trial") from None
        parts = {p: {k[len(p) + 1:]: v for k, v in tensors.items() if k.startswith(p + ".")}
                 for p in ("frozen", "decoder", "denoiser", "norm")}
        expected_frozen = {k: v for k, v in classifier.build().state_dict().items() if k not in set(classifier.names)}
        problems = []
        for label, module_state, given in (("decoder", decoder.state_dict(), parts["decoder"]),
                                           ("denoiser", denoiser.state_dict(), parts["denoiser"]),
                                           ("frozen classifier", expected_frozen, parts["frozen"])):
            missing, extra = sorted(set(module_state) - set(given)), sorted(set(given) - set(module_state))
            wrong = sorted(k for k in set(module_state) & set(given) if given[k].shape != module_state[k].shape)
            if missing or extra or wrong:
                problems.append(f"{label}: missing {missing[:3]}, unexpected {extra[:3]}, wrong shapes {wrong[:3]}")
        norm = parts["norm"]
        if norm.get("mean") is None or norm["mean"].shape != (classifier.dim,) or \
                norm.get("scale") is None or norm["scale"].numel() not in (1, classifier.dim):
            problems.append(f"norm: needs mean [{classifier.dim}] and scale [1 or {classifier.dim}]")
        if problems:
            raise GenasError(f"the pdiff checkpoint does not match its config ({'; '.join(problems)}); re-export it from its trial")
        decoder.load_state_dict(parts["decoder"])
        denoiser.load_state_dict(parts["denoiser"])
        frozen = {k: v.to(expected_frozen[k].dtype) for k, v in parts["frozen"].items()}
        scale = norm["scale"].reshape(()) if norm["scale"].numel() == 1 else norm["scale"]  # one scale: older models
        return cls(classifier, frozen, decoder, denoiser, norm["mean"], scale, latent_shape, latent_scale, schedule, arch)
