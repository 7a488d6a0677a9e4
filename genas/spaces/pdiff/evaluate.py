"""Stage 3: accuracy of generated classifiers, selection on the train split, memorisation and its controls.

The source's protocol (§3.1.3): generate M parameter sets, put each into the frozen rest of the
model, *select* the best on the training set and report it on a set never used for selection.
Here selection (:func:`select_best`) receives only train-split predictions and labels, so the
held-out labels cannot influence which model is chosen; it is used for every group alike.

Memorisation (source §4.2-4.3): the IoU of two models' wrong predictions on the held-out split,
|W_a & W_b| / |W_a | W_b|. A model's *nearest IoU* is its maximum IoU over the K training
checkpoints ("originals"). Reported for the generated models (``iou_gen_nearest_orig``) next to
its controls, each computed the same way:

- ``iou_orig_nearest_orig``: each original's nearest IoU over the *other* originals (leave one
  out): how alike the checkpoints already are;
- ``iou_heldout_nearest_orig``: checkpoints of the same run never shown to the autoencoder: what
  a *new* model of the training process scores. ``p_gen_nearer_than_ckpt`` = P(a generated model's
  nearest IoU > a held-out checkpoint's) + half the ties: 0.5 = generated models sit as near the
  training checkpoints as a new checkpoint does, 1 = every one sits nearer (the leave-one-out
  originals stand in when no checkpoint is held out);
- ``iou_noise_nearest_orig`` / ``iou_finetune_nearest_orig``: the source's baselines (§4.3): pick
  a generated model at random, take its nearest original, add Gaussian noise of amplitude
  0.01...0.1 to its weights (not its running statistics), or fine-tune it a few steps with the
  stage-1 recipe;
- ``distinct_orig`` / ``distinct_generated``: the share of distinct prediction patterns.

In parameter space (each generated tensor in units of the originals' spread of it, so that running
variances do not drown the weights): each vector's L2 distance to its nearest original divided by
the originals' own median nearest-neighbour distance (``dist_*_nearest_orig``; below 1: closer to a
training checkpoint than the checkpoints are to each other) and the distance to the originals' mean.
:func:`verdict` reads ``p_gen_nearer_than_ckpt`` as a word for the leaderboard.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn
from torch.func import functional_call

from genas.spaces.pdiff.classifiers import is_statistic, split_prefix, unflatten
from genas.spaces.pdiff.splits import Split

BATCH = 1024
NOISE_RANGE = (0.01, 0.1)


@dataclass
class Predictions:
    labels: torch.Tensor  # [M, N] predicted classes
    probs_sum: torch.Tensor  # [N, classes] summed softmax (for the ensemble)


class SubsetEvaluator:
    """Runs one classifier with many subset vectors; the frozen prefix's features are computed once per split."""

    def __init__(self, model: nn.Module, names: list[str], shapes: list[list[int]], device: torch.device) -> None:
        self.model = model.to(device).eval().requires_grad_(False)
        self.names, self.shapes, self.device = names, shapes, device
        self.prefix, self.head = split_prefix(self.model, names)
        self._features: dict[int, torch.Tensor] = {}

    def features(self, split: Split) -> torch.Tensor:
        key = id(split)
        if key not in self._features:
            x = split.images.to(self.device)
            with torch.no_grad():
                self._features[key] = torch.cat([self.prefix(x[i:i + BATCH]) for i in range(0, len(split), BATCH)])
        return self._features[key]

    @torch.no_grad()
    def predict(self, vectors: torch.Tensor, split: Split) -> Predictions:
        feats, labels, probs = self.features(split), [], None
        for v in vectors:
            params = unflatten(v.to(self.device), self.names, self.shapes)
            logits = torch.cat([functional_call(self.head, params, (feats[i:i + BATCH],)).float()
                                for i in range(0, feats.shape[0], BATCH)])
            labels.append(logits.argmax(1).cpu())
            p = logits.softmax(1).cpu()
            probs = p if probs is None else probs + p
        if not labels:
            return Predictions(torch.zeros(0, feats.shape[0], dtype=torch.long), torch.zeros(feats.shape[0], 1))
        return Predictions(torch.stack(labels), probs)


def accuracies(preds: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """[M] accuracy of each of M prediction rows."""
    return (preds == labels[None]).float().mean(1)


def select_best(train_preds: torch.Tensor, train_labels: torch.Tensor) -> int:
    """The index of the model with the best train-split accuracy: the only selection pdiff makes."""
    return int(accuracies(train_preds, train_labels).argmax())


def wrong_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """[A, B] IoU of wrong-prediction sets; ``a`` [A, N], ``b`` [B, N] boolean 'wrong' masks."""
    a, b = a.float(), b.float()
    inter = a @ b.T
    union = a.sum(1, keepdim=True) + b.sum(1)[None] - inter
    return torch.where(union > 0, inter / union.clamp_min(1), torch.ones_like(inter))


def _mean_offdiag(m: torch.Tensor) -> float:
    n = m.shape[0]
    return float((m.sum() - m.diagonal().sum()) / max(n * (n - 1), 1))


def nearest_iou(wrong: torch.Tensor, originals_wrong: torch.Tensor) -> torch.Tensor:
    """[A]: each model's maximum wrong-prediction IoU over the originals."""
    return wrong_iou(wrong, originals_wrong).max(1).values


def leave_one_out_nearest_iou(originals_wrong: torch.Tensor) -> torch.Tensor:
    """[K]: each original's maximum IoU over the *other* originals (empty for K < 2)."""
    if originals_wrong.shape[0] < 2:
        return torch.zeros(0)
    iou = wrong_iou(originals_wrong, originals_wrong)
    iou.fill_diagonal_(-1.0)
    return iou.max(1).values


def p_nearer(values: torch.Tensor, reference: torch.Tensor) -> float:
    """P(a value > a reference value) + half P(equal): 0.5 when both come from one distribution."""
    diff = values[:, None].double() - reference[None].double()
    return float((diff > 1e-9).double().mean() + 0.5 * (diff.abs() <= 1e-9).double().mean())


def distinct_share(preds: torch.Tensor) -> float:
    """The share of distinct prediction rows among ``preds`` [M, N]."""
    return float(torch.unique(preds, dim=0).shape[0] / max(preds.shape[0], 1))


def add_noise(starts: torch.Tensor, weights: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """``starts`` plus Gaussian noise of amplitude evenly spread over NOISE_RANGE, on the ``weights`` mask only."""
    n = starts.shape[0]
    amps = torch.linspace(*NOISE_RANGE, n)[:, None] if n > 1 else torch.tensor([[NOISE_RANGE[0]]])
    return starts + amps * torch.randn(starts.shape, generator=gen) * weights[None].float()


def weight_mask(names: list[str], shapes: list[list[int]]) -> torch.Tensor:
    """[D] True where a vector holds a weight or bias, False on a running statistic."""
    return torch.cat([torch.full((int(torch.Size(s).numel()),), not is_statistic(n)) for n, s in zip(names, shapes)])


def tensor_spread(originals: torch.Tensor, names: list[str], shapes: list[list[int]]) -> torch.Tensor:
    """[D]: per coordinate, the standard deviation of the originals around their mean over its whole tensor."""
    deviation, out, at = originals - originals.mean(0), [], 0
    for size in (int(torch.Size(s).numel()) for s in shapes):
        spread = deviation[:, at:at + size].std() if originals.shape[0] > 1 else torch.tensor(1.0)
        out.append(torch.full((size,), float(spread.clamp_min(1e-12))))
        at += size
    return torch.cat(out)


def _group(prefix: str, train: Predictions, held: Predictions, split_train: Split, split_held: Split) -> dict[str, float]:
    if held.labels.shape[0] == 0:
        return {}
    held_acc = accuracies(held.labels, split_held.labels)
    best = select_best(train.labels, split_train.labels)
    return {f"{prefix}_best": float(held_acc[best]), f"{prefix}_mean": float(held_acc.mean()),
            f"{prefix}_median": float(held_acc.median()), f"{prefix}_min": float(held_acc.min()),
            f"{prefix}_max": float(held_acc.max())}


def _nearest_distance(x: torch.Tensor, originals: torch.Tensor, scale: float) -> torch.Tensor:
    return torch.cdist(x.double(), originals.double()).min(1).values.float() / scale


def report(evaluator: SubsetEvaluator, generated: torch.Tensor, originals: torch.Tensor, train: Split, held: Split,
           *, noise_models: int, seed: int, heldout_ckpts: torch.Tensor | None = None,
           finetune: Callable[[torch.Tensor, int], torch.Tensor] | None = None, finetune_models: int = 0,
           per_model: dict | None = None) -> dict[str, float]:
    """Every stage-3 number: accuracies of each group, memorisation and its controls.

    ``originals`` [K, D] are the checkpoints the autoencoder trained on, ``heldout_ckpts`` [H, D]
    more of the same run that it never saw. ``finetune(starts, seed)`` fine-tunes [n, D] vectors
    (the stage-1 recipe); it is called on the nearest originals of ``finetune_models`` generated
    models drawn at random. ``per_model``, when given, receives each generated model's nearest
    original (index into ``originals`` by wrong-prediction IoU), that IoU, and its held-out accuracy.
    """
    gen = torch.Generator().manual_seed(seed)
    heldout_ckpts = originals[:0] if heldout_ckpts is None else heldout_ckpts
    gen_tr, gen_ho = evaluator.predict(generated, train), evaluator.predict(generated, held)
    org_tr, org_ho = evaluator.predict(originals, train), evaluator.predict(originals, held)
    hck_tr, hck_ho = evaluator.predict(heldout_ckpts, train), evaluator.predict(heldout_ckpts, held)
    wrong = lambda p: p.labels != held.labels[None]  # noqa: E731
    wrong_g, wrong_o, wrong_h = wrong(gen_ho), wrong(org_ho), wrong(hck_ho)
    go = wrong_iou(wrong_g, wrong_o)
    near_g, nearest = go.max(1).values, go.argmax(1)

    # The source's baselines start from the nearest originals of generated models drawn at random.
    starts = lambda n: originals[nearest[torch.randint(len(nearest), (n,), generator=gen)]]  # noqa: E731
    noisy = add_noise(starts(noise_models), weight_mask(evaluator.names, evaluator.shapes), gen)
    tuned = finetune(starts(finetune_models), seed) if finetune is not None and finetune_models else originals[:0]
    noi_tr, noi_ho = evaluator.predict(noisy, train), evaluator.predict(noisy, held)
    fin_tr, fin_ho = evaluator.predict(tuned, train), evaluator.predict(tuned, held)

    out = {}
    for prefix, (tr, ho) in {"acc": (gen_tr, gen_ho), "orig": (org_tr, org_ho), "heldout_ckpt": (hck_tr, hck_ho),
                             "noise": (noi_tr, noi_ho), "finetune": (fin_tr, fin_ho)}.items():
        out.update(_group(prefix, tr, ho, train, held))
    out["ensemble_acc"] = float((org_ho.probs_sum.argmax(1) == held.labels).float().mean())

    out["iou_orig_orig"] = _mean_offdiag(wrong_iou(wrong_o, wrong_o))
    out["iou_gen_gen"] = _mean_offdiag(wrong_iou(wrong_g, wrong_g))
    out["iou_gen_orig"] = float(go.mean())
    out["iou_gen_nearest_orig"] = float(near_g.mean())
    out["share_gen_identical_orig"] = float((near_g >= 1 - 1e-9).float().mean())  # same wrong set as an original
    loo = leave_one_out_nearest_iou(wrong_o)
    near_h = nearest_iou(wrong_h, wrong_o) if heldout_ckpts.shape[0] else torch.zeros(0)
    reference = near_h if near_h.numel() else loo
    if loo.numel():
        out["iou_orig_nearest_orig"] = float(loo.mean())
    if near_h.numel():
        out["iou_heldout_nearest_orig"] = float(near_h.mean())
        out["share_heldout_identical_orig"] = float((near_h >= 1 - 1e-9).float().mean())
    if reference.numel():
        out["p_gen_nearer_than_ckpt"] = p_nearer(near_g, reference)
    out["iou_noise_nearest_orig"] = float(nearest_iou(wrong(noi_ho), wrong_o).mean())
    if tuned.shape[0]:
        out["iou_finetune_nearest_orig"] = float(nearest_iou(wrong(fin_ho), wrong_o).mean())
    out["distinct_generated"] = distinct_share(gen_ho.labels)
    out["distinct_orig"] = distinct_share(org_ho.labels)
    if per_model is not None:
        per_model.update({"nearest_original": nearest.tolist(), "nearest_iou": [round(float(x), 4) for x in near_g],
                          "accuracy": [round(float(x), 4) for x in accuracies(gen_ho.labels, held.labels)]})

    # Parameter space: each tensor in units of the originals' spread of it (running variances would
    # drown the weights otherwise), distances relative to the originals' own nearest-neighbour spacing.
    unit = tensor_spread(originals, evaluator.names, evaluator.shapes)
    generated, originals, noisy, tuned, heldout_ckpts = (x / unit for x in (generated, originals, noisy, tuned,
                                                                            heldout_ckpts))
    if originals.shape[0] > 1:
        d = torch.cdist(originals.double(), originals.double())
        d.fill_diagonal_(float("inf"))
        spacing = float(d.min(1).values.median())
    else:
        spacing = 1.0
    spacing = max(spacing, 1e-12)
    near_dist = _nearest_distance(generated, originals, spacing)
    out["dist_gen_nearest_orig"] = float(near_dist.median())
    out["dist_noise_nearest_orig"] = float(_nearest_distance(noisy, originals, spacing).median())
    if heldout_ckpts.shape[0]:
        out["dist_heldout_nearest_orig"] = float(_nearest_distance(heldout_ckpts, originals, spacing).median())
    if tuned.shape[0]:
        out["dist_finetune_nearest_orig"] = float(_nearest_distance(tuned, originals, spacing).median())
    out["share_gen_within_orig_spacing"] = float((near_dist <= 1.0).float().mean())
    centre = originals.mean(0, keepdim=True)
    out["dist_gen_orig_mean"] = float(_nearest_distance(generated, centre, spacing).median())
    out["dist_orig_orig_mean"] = float(_nearest_distance(originals, centre, spacing).median())  # the originals' own spread
    return out


def verdict(metrics: dict[str, float]) -> str:
    """One word for the leaderboard from ``p_gen_nearer_than_ckpt`` (a reading aid; the numbers are the result).

    ``replica`` (P > 0.75: generated models sit nearer the training checkpoints than new
    checkpoints do), ``nearer`` (0.6 < P <= 0.75), ``as new`` (0.4 <= P <= 0.6: as near as a new
    checkpoint of the same run), ``farther`` (P < 0.4); ``, weaker`` is added when the generated
    models' median accuracy is below the worst original's. ``ckpts alike`` when the checkpoints
    themselves make identical mistakes (their nearest IoU is 1), where the test cannot tell.
    """
    p = metrics.get("p_gen_nearer_than_ckpt")
    reference = metrics.get("iou_heldout_nearest_orig", metrics.get("iou_orig_nearest_orig"))
    if p is None or reference is None:
        return "n/a"
    if reference >= 1 - 1e-9:
        return "ckpts alike"
    word = "replica" if p > 0.75 else "nearer" if p > 0.6 else "as new" if p >= 0.4 else "farther"
    weaker = word in ("as new", "farther") and metrics.get("acc_median", 1.0) < metrics.get("orig_min", 0.0)
    return word + (", weaker" if weaker else "")


def quick(evaluator: SubsetEvaluator, generated: torch.Tensor, train: Split) -> dict[str, float]:
    """Train-split accuracies of a few generated models, for the pruner (never the held-out split)."""
    acc = accuracies(evaluator.predict(generated, train).labels, train.labels)
    return {"acc_best_quick": float(acc.max()), "acc_mean_quick": float(acc.mean()),
            "acc_median_quick": float(acc.median())}
