"""Stage 1: train a base classifier, then train only the generated subset and save K + H checkpoints.

As in the source (§2.3.1, §3.1.2) and its reference code: the base model is trained from
scratch on the train split; then only the subset is trained (SGD, momentum 0.9, weight decay
5e-4) while the rest stays fixed, on augmented images (random translation by up to 1/8 of the
side, black padding: the reference's ``RandomCrop(32, padding=4)``; no flips, digits are not
mirror-symmetric), with the generated BatchNorm layers in train mode: they normalise with batch
statistics and their running statistics move, and each checkpoint saves those statistics with
the weights (they are generated together, see classifiers.py). BatchNorm layers outside the
subset stay in eval mode with the base model's statistics, so the frozen rest is one fixed
function during training and evaluation alike (the reference runs them in train mode too but
evaluates with the base model's statistics).

When a checkpoint is saved (``collect``):

- ``epoch`` (default): one checkpoint at the end of every epoch of subset training, as the
  reference's released training script does (``save_num_model`` epochs after the base epochs).
  Consecutive checkpoints are a whole epoch of augmented SGD apart.
- ``step``: every ``max(1, steps_per_epoch // (K + H))``-th step, as the reference's newer
  fine-tuning scripts save within one augmented epoch (running into more epochs when K + H is
  larger than the steps of one). Checkpoints are one or a few steps apart: far more alike.

K checkpoints train the autoencoder; H more, interleaved evenly along the same trajectory, are
*held out* from it (the control for memorisation: a held-out checkpoint is a new model of the
same process). K + H are collected once per (dataset, recipe) and cached under
``cache_dir()/pdiff/<key>/`` as safetensors + JSON (written to a temporary folder, then renamed).

``subset=all`` (whole-model generation, §3.3.4) uses the same procedure; the source instead
trains 200 models from 200 seeds, which would cost K full trainings.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from genas.data import Dataset
from genas.errors import GenasError, TrainingDiverged
from genas.home import cache_dir
from genas.spaces.gan.augment import translation
from genas.spaces.pdiff.classifiers import (build_classifier, generated_modules, split_prefix, subset_names, unflatten,
                                            vector_of)
from genas.spaces.pdiff.splits import Split, train_heldout

log = logging.getLogger(__name__)
CACHE_VERSION = 3  # 3: per-epoch, augmented, BatchNorm in train mode, running statistics generated, held-out checkpoints
COLLECTIONS = ("epoch", "step")


@dataclass(frozen=True)
class Recipe:
    """How stage 1 trains: base epochs (Adam), then subset-only SGD saving K + H checkpoints."""

    arch: str
    subset: str
    checkpoints: int  # K: the checkpoints the autoencoder trains on
    base_epochs: int
    heldout: int = 0  # H: more checkpoints of the same run, never shown to the autoencoder
    collect: str = "epoch"  # one checkpoint per epoch, or evenly spaced steps ("step")
    batch_size: int = 64
    base_lr: float = 1e-3
    subset_lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    augment: str = "translation"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.collect not in COLLECTIONS:
            raise GenasError(f"unknown collect={self.collect!r}; use epoch (one checkpoint per epoch) or step")
        if self.checkpoints < 1 or self.heldout < 0:
            raise GenasError(f"pdiff needs at least one checkpoint and no negative held-out count "
                             f"(checkpoints={self.checkpoints}, heldout={self.heldout})")


def heldout_positions(k: int, h: int) -> list[int]:
    """Indices (into the K + H collected) of the H held-out checkpoints, spread evenly along the run."""
    total = k + h
    return sorted({min(int((i + 0.5) * total / h), total - 1) for i in range(h)}) if h else []


@dataclass
class Checkpoints:
    """The base model's full state (the frozen rest) and the K + H flattened subset vectors."""

    recipe: Recipe
    names: list[str]
    shapes: list[list[int]]
    base_state: dict[str, torch.Tensor]
    vectors: torch.Tensor  # [K + H, D] float32, in training order
    base_accuracy: float  # the base model's accuracy on the train split

    @property
    def heldout_index(self) -> list[int]:
        return heldout_positions(self.recipe.checkpoints, self.recipe.heldout)

    @property
    def train(self) -> torch.Tensor:
        """[K, D]: the checkpoints the autoencoder sees."""
        held = set(self.heldout_index)
        return self.vectors[[i for i in range(self.vectors.shape[0]) if i not in held]]

    @property
    def heldout(self) -> torch.Tensor:
        """[H, D]: checkpoints of the same run never shown to the autoencoder."""
        return self.vectors[self.heldout_index]


def cache_key(dataset: Dataset, recipe: Recipe) -> str:
    text = json.dumps({"v": CACHE_VERSION, "dataset": dataset.key, "n": len(dataset),
                       "res": dataset.resolution, **recipe.__dict__}, sort_keys=True)
    digest = hashlib.sha1(text.encode()).hexdigest()[:12]
    name = f"{dataset.key}-{recipe.arch}-{recipe.subset}-k{recipe.checkpoints}+{recipe.heldout}-{recipe.collect}-{digest}"
    return name.replace("/", "_").replace(":", "_").replace(",", "_")


def collect(dataset: Dataset, recipe: Recipe, device: torch.device) -> tuple[Checkpoints, bool]:
    """The cached checkpoints for (dataset, recipe), trained now when absent; (checkpoints, cache hit)."""
    folder = cache_dir() / "pdiff" / cache_key(dataset, recipe)
    if (folder / "meta.json").is_file():
        return _read(folder, recipe), True
    train, _ = train_heldout(dataset)
    ckpts = _train(train, dataset, recipe, device)
    _write(folder, ckpts)
    return ckpts, False


def _batches(n: int, batch: int, gen: torch.Generator):
    order = torch.randperm(n, generator=gen)
    for start in range(0, n - batch + 1 if n >= batch else 1, batch):
        yield order[start:start + batch]


def augment(x: torch.Tensor, recipe: Recipe) -> torch.Tensor:
    """The training-time augmentation: translation with black (-1) padding (the kit pads with 0)."""
    return translation(x + 1) - 1 if recipe.augment == "translation" else x


class SubsetTrainer:
    """Trains only the generated entries of one classifier: stage 1's subset phase, and the fine-tuning baseline.

    The frozen rest is in eval mode (a fixed prefix computed without gradients), the generated
    layers in train mode; ``step()`` is one augmented SGD step on the next batch of the train split.
    """

    def __init__(self, model: nn.Module, names: list[str], shapes: list[list[int]], train: Split, recipe: Recipe,
                 device: torch.device, gen: torch.Generator) -> None:
        self.model, self.names, self.shapes, self.recipe, self.gen = model, names, shapes, recipe, gen
        self.x, self.y = train.images.to(device), train.labels.to(device)
        self.device = device
        self.prefix, self.head = split_prefix(model, names)
        self.trained = generated_modules(model, names)
        model.requires_grad_(False)
        params = dict(model.named_parameters())
        self.params = [params[n] for n in names if n in params]
        for p in self.params:
            p.requires_grad_(True)
        self.autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")
        self.reset_optimizer()
        self._order = iter(())

    @property
    def steps_per_epoch(self) -> int:
        return max(len(self.y) // self.recipe.batch_size, 1)

    def reset_optimizer(self) -> None:
        r = self.recipe
        self.opt = torch.optim.SGD(self.params, lr=r.subset_lr, momentum=r.momentum, weight_decay=r.weight_decay)

    def load(self, vector: torch.Tensor) -> None:
        """Set the generated entries (weights and running statistics) from a flat vector."""
        with torch.no_grad():
            state = self.model.state_dict()
            for name, value in unflatten(vector.to(self.device), self.names, self.shapes).items():
                state[name].copy_(value)

    def vector(self) -> torch.Tensor:
        return vector_of(self.model, self.names).float().cpu()

    def step(self) -> torch.Tensor:
        idx = next(self._order, None)
        if idx is None:  # a new epoch
            self._order = _batches(len(self.y), self.recipe.batch_size, self.gen)
            idx = next(self._order)
        idx = idx.to(self.device)
        self.model.eval()
        for m in self.trained:
            m.train()
        with self.autocast:
            with torch.no_grad():
                feats = self.prefix(augment(self.x[idx], self.recipe))
            loss = F.cross_entropy(self.head(feats).float(), self.y[idx])
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self.model.eval()
        return loss.detach()


def _train(train: Split, dataset: Dataset, recipe: Recipe, device: torch.device) -> Checkpoints:
    torch.manual_seed(recipe.seed)
    gen = torch.Generator().manual_seed(recipe.seed)
    model = build_classifier(recipe.arch, dataset.channels, dataset.resolution).to(device)
    names = subset_names(model, recipe.subset, recipe.arch)
    shapes = [list(model.state_dict()[n].shape) for n in names]
    x, y = train.images.to(device), train.labels.to(device)
    cuda = device.type == "cuda"
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda)
    if cuda:
        torch.backends.cudnn.benchmark = True
        model = model.to(memory_format=torch.channels_last)

    opt = torch.optim.Adam(model.parameters(), lr=recipe.base_lr)
    model.train()
    for _ in range(recipe.base_epochs):
        for idx in _batches(len(train), recipe.batch_size, gen):
            idx = idx.to(device)
            with autocast:
                loss = F.cross_entropy(model(augment(x[idx], recipe)).float(), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        if not torch.isfinite(loss):
            raise TrainingDiverged(f"stage 1 (base {recipe.arch}) diverged (loss={loss.item()}); "
                                   "lower the base learning rate")
    model.eval()
    base_state = {k: v.detach().float().cpu().contiguous() if v.is_floating_point() else v.detach().cpu()
                  for k, v in model.state_dict().items()}

    # The subset phase: only the generated entries move; K + H checkpoints of one run.
    trainer = SubsetTrainer(model, names, shapes, train, recipe, device, gen)
    total = recipe.checkpoints + recipe.heldout
    every = trainer.steps_per_epoch if recipe.collect == "epoch" else max(1, trainer.steps_per_epoch // total)
    vectors, step = [], 0
    while len(vectors) < total:
        loss = trainer.step()
        step += 1
        if step % every == 0:
            if not torch.isfinite(loss):
                raise TrainingDiverged("stage 1 (subset phase) diverged; lower subset_lr")
            vectors.append(trainer.vector())
    with torch.no_grad(), autocast:
        correct = sum((model(x[i:i + 512]).argmax(1) == y[i:i + 512]).sum().item() for i in range(0, len(train), 512))
    # The base's own accuracy is what the frozen rest was trained to: measure it with the base state.
    model.load_state_dict({k: v.to(model.state_dict()[k].dtype) for k, v in base_state.items()})
    with torch.no_grad(), autocast:
        base_correct = sum((model(x[i:i + 512]).argmax(1) == y[i:i + 512]).sum().item()
                           for i in range(0, len(train), 512))
    log.info("pdiff stage 1: %s/%s, %d + %d checkpoints (%s) of %d numbers over %d steps, train accuracy "
             "base %.4f, last checkpoint %.4f", recipe.arch, recipe.subset, recipe.checkpoints, recipe.heldout,
             recipe.collect, vectors[0].numel(), step, base_correct / len(train), correct / len(train))
    return Checkpoints(recipe, names, shapes, base_state, torch.stack(vectors), base_correct / len(train))


def finetune(ckpts: Checkpoints, model: nn.Module, train: Split, starts: torch.Tensor, steps: int, seed: int,
             device: torch.device) -> torch.Tensor:
    """The source's fine-tuning baseline (§4.3): each of ``starts`` [n, D] trained ``steps`` more subset steps.

    Same recipe as stage 1 (augmented SGD, generated BatchNorm layers in train mode), a fresh
    optimizer and its own seeded batch order and augmentation per start; ``model`` holds the base
    state (the frozen rest). The caller's random state is left as it was.
    """
    model = model.to(device)
    out = []
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        for i, start in enumerate(starts):
            torch.manual_seed(seed * 1_000_003 + i)
            trainer = SubsetTrainer(model, ckpts.names, ckpts.shapes, train, ckpts.recipe, device,
                                    torch.Generator().manual_seed(seed * 1_000_003 + i))
            trainer.load(start)
            for _ in range(steps):
                trainer.step()
            out.append(trainer.vector())
    return torch.stack(out) if out else starts[:0].clone()


def _write(folder: Path, ckpts: Checkpoints) -> None:
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.")
    try:
        tensors = {f"base.{k}": v.contiguous() for k, v in ckpts.base_state.items()}
        tensors["checkpoints"] = ckpts.vectors.contiguous()
        save_file(tensors, os.path.join(tmp, "tensors.safetensors"))
        with open(os.path.join(tmp, "meta.json"), "w") as f:
            json.dump({"recipe": ckpts.recipe.__dict__, "names": ckpts.names, "shapes": ckpts.shapes,
                       "base_accuracy": ckpts.base_accuracy}, f)
        try:
            os.replace(tmp, folder)
        except OSError:  # another process wrote the same checkpoints first: keep theirs
            pass
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _read(folder: Path, recipe: Recipe) -> Checkpoints:
    try:
        meta = json.loads((folder / "meta.json").read_text())
        tensors = load_file(str(folder / "tensors.safetensors"))
    except Exception as exc:  # noqa: BLE001 - any parse failure means a corrupt cache entry
        raise GenasError(f"pdiff checkpoint cache {folder} is corrupt ({type(exc).__name__}); delete that folder") from exc
    base = {k[len("base."):]: v for k, v in tensors.items() if k.startswith("base.")}
    return Checkpoints(recipe, meta["names"], meta["shapes"], base, tensors["checkpoints"], meta["base_accuracy"])
