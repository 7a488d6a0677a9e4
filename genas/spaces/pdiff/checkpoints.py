"""Stage 1: train a base classifier, then keep training only the parameter subset and save K_max checkpoints.

As in the source (§2.3.1): the base model is trained from scratch on the train split, then only
the subset is trained with SGD while the rest stays fixed, and the subset is saved after every
step of that last phase ("densely in the last epoch"). Choices vs the source:

- During the subset phase the whole model is in eval mode, so BatchNorm running statistics are
  part of the frozen rest (generated weight/bias always meet the same statistics).
- ``subset=all`` (whole-model generation, §3.3.4) uses the same procedure; the source instead
  trains 200 models from 200 seeds, which would cost K full trainings. Dense checkpoints of one
  run are more alike than independent runs, which the memorisation numbers must be read with.
- K_max checkpoints are collected once per (dataset, arch, subset, K_max, recipe) and cached under
  ``cache_dir()/pdiff/<key>/`` as safetensors + JSON (written to a temporary folder, then renamed);
  a trial with K <= K_max uses the *last* K (the most trained ones).
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

from genas.data import Dataset
from genas.errors import GenasError, TrainingDiverged
from genas.home import cache_dir
from genas.spaces.pdiff.classifiers import build_classifier, split_prefix, subset_names, vector_of
from genas.spaces.pdiff.splits import Split, train_heldout

log = logging.getLogger(__name__)
CACHE_VERSION = 2


@dataclass(frozen=True)
class Recipe:
    """How stage 1 trains: base epochs (Adam) then K_max single-batch SGD steps on the subset."""

    arch: str
    subset: str
    k_max: int
    base_epochs: int
    batch_size: int = 64
    base_lr: float = 1e-3
    subset_lr: float = 0.01
    seed: int = 0


@dataclass
class Checkpoints:
    """The base model's full state (the frozen rest) and K_max flattened subset vectors."""

    recipe: Recipe
    names: list[str]
    shapes: list[list[int]]
    base_state: dict[str, torch.Tensor]
    vectors: torch.Tensor  # [K_max, D] float32
    base_accuracy: float  # the base model's accuracy on the train split

    def last(self, k: int) -> torch.Tensor:
        """The last ``k`` checkpoints; GenasError when fewer were collected."""
        if not 0 < k <= self.vectors.shape[0]:
            raise GenasError(f"K={k} is more than the {self.vectors.shape[0]} checkpoints collected; "
                             f"lower K or raise --set checkpoints={k}")
        return self.vectors[-k:]


def cache_key(dataset: Dataset, recipe: Recipe) -> str:
    text = json.dumps({"v": CACHE_VERSION, "dataset": dataset.key, "n": len(dataset),
                       "res": dataset.resolution, **recipe.__dict__}, sort_keys=True)
    digest = hashlib.sha1(text.encode()).hexdigest()[:12]
    return f"{dataset.key}-{recipe.arch}-{recipe.subset}-k{recipe.k_max}-{digest}".replace("/", "_").replace(":", "_")


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


def _train(train: Split, dataset: Dataset, recipe: Recipe, device: torch.device) -> Checkpoints:
    torch.manual_seed(recipe.seed)
    gen = torch.Generator().manual_seed(recipe.seed)
    model = build_classifier(recipe.arch, dataset.channels, dataset.resolution).to(device)
    names = subset_names(model, recipe.subset, recipe.arch)
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
                loss = F.cross_entropy(model(x[idx]).float(), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        if not torch.isfinite(loss):
            raise TrainingDiverged(f"stage 1 (base {recipe.arch}) diverged (loss={loss.item()}); "
                                   "lower the base learning rate")

    # The subset phase: everything but the subset fixed, BatchNorm statistics included.
    model.eval().requires_grad_(False)
    params = dict(model.named_parameters())
    for n in names:
        params[n].requires_grad_(True)
    prefix, head = split_prefix(model, names)
    with torch.no_grad(), autocast:
        feats = torch.cat([prefix(x[i:i + 512]).float() for i in range(0, len(train), 512)])
    opt = torch.optim.SGD([params[n] for n in names], lr=recipe.subset_lr, momentum=0.9)
    vectors, batches = [], iter(())
    while len(vectors) < recipe.k_max:
        idx = next(batches, None)
        if idx is None:
            batches = _batches(len(train), recipe.batch_size, gen)
            continue
        idx = idx.to(device)
        with autocast:
            loss = F.cross_entropy(head(feats[idx]).float(), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        vectors.append(vector_of(model, names).float().cpu())
    if not torch.isfinite(loss):
        raise TrainingDiverged("stage 1 (subset phase) diverged; lower subset_lr")
    with torch.no_grad(), autocast:
        correct = sum((head(feats[i:i + 512]).argmax(1) == y[i:i + 512]).sum().item() for i in range(0, len(train), 512))
    state = {k: v.detach().float().cpu().contiguous() for k, v in model.state_dict().items()}
    log.info("pdiff stage 1: %s/%s, %d checkpoints of %d parameters, train accuracy %.4f",
             recipe.arch, recipe.subset, recipe.k_max, vectors[0].numel(), correct / len(train))
    return Checkpoints(recipe, names, [list(params[n].shape) for n in names], state,
                       torch.stack(vectors), correct / len(train))


def _write(folder: Path, ckpts: Checkpoints) -> None:
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}."))
    try:
        tensors = {f"base.{k}": v for k, v in ckpts.base_state.items()}
        tensors["checkpoints"] = ckpts.vectors.contiguous()
        save_file(tensors, str(tmp / "tensors.safetensors"))
        (tmp / "meta.json").write_text(json.dumps({"recipe": ckpts.recipe.__dict__, "names": ckpts.names,
                                                   "shapes": ckpts.shapes, "base_accuracy": ckpts.base_accuracy}))
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
