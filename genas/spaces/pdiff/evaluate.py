"""Stage 3: accuracy of generated classifiers, selection on the train split, memorisation numbers.

The source's protocol (§3.1.3): generate M parameter sets, put each into the frozen rest of the
model, *select* the best on the training set and report it on a set never used for selection.
Here selection (:func:`select_best`) receives only train-split predictions and labels, so the
held-out labels cannot influence which model is chosen; it is used for the generated models,
the K originals and the noise-added baseline alike.

Memorisation (source §4.2-4.3): the IoU of two models' wrong predictions on the held-out split,
|W_a & W_b| / |W_a | W_b|. Reported: mean IoU among originals, among generated models, between
generated and originals, and each generated model's maximum IoU over the originals (its nearest
original by prediction); in parameter space, each generated vector's L2 distance to its nearest
original divided by the originals' own median nearest-neighbour distance (below 1: closer to a
training checkpoint than the checkpoints are to each other), the distance to the originals' mean
next to the originals' own distance to it (the generated set's place in the cloud), and the same
numbers for the noise-added baseline (an original plus Gaussian noise of amplitude 0.01 ... 0.1, source §4.3).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.func import functional_call

from genas.spaces.pdiff.classifiers import split_prefix, unflatten
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


def noise_baseline(originals: torch.Tensor, n: int, gen: torch.Generator) -> torch.Tensor:
    """``n`` originals (drawn at random) plus Gaussian noise of amplitude evenly spread over NOISE_RANGE."""
    pick = torch.randint(originals.shape[0], (n,), generator=gen)
    amps = torch.linspace(*NOISE_RANGE, n)[:, None]
    return originals[pick] + amps * torch.randn(n, originals.shape[1], generator=gen)


def _group(prefix: str, train: Predictions, held: Predictions, split_train: Split, split_held: Split) -> dict[str, float]:
    held_acc = accuracies(held.labels, split_held.labels)
    best = select_best(train.labels, split_train.labels)
    return {f"{prefix}_best": float(held_acc[best]), f"{prefix}_mean": float(held_acc.mean()),
            f"{prefix}_median": float(held_acc.median()), f"{prefix}_max": float(held_acc.max())}


def _nearest_distance(x: torch.Tensor, originals: torch.Tensor, scale: float) -> torch.Tensor:
    return torch.cdist(x.double(), originals.double()).min(1).values.float() / scale


def report(evaluator: SubsetEvaluator, generated: torch.Tensor, originals: torch.Tensor, train: Split, held: Split,
           noise_models: int, seed: int, per_model: dict | None = None) -> dict[str, float]:
    """Every stage-3 number: generated / original / ensemble / noise-baseline accuracies and memorisation.

    ``per_model``, when given, receives each generated model's nearest original (index into
    ``originals`` by wrong-prediction IoU), that IoU, and its held-out accuracy.
    """
    gen_tr, gen_ho = evaluator.predict(generated, train), evaluator.predict(generated, held)
    org_tr, org_ho = evaluator.predict(originals, train), evaluator.predict(originals, held)
    noisy = noise_baseline(originals, noise_models, torch.Generator().manual_seed(seed))
    noi_tr, noi_ho = evaluator.predict(noisy, train), evaluator.predict(noisy, held)
    out = {}
    g = _group("acc", gen_tr, gen_ho, train, held)
    out.update({"acc_best": g["acc_best"], "acc_mean": g["acc_mean"], "acc_median": g["acc_median"], "acc_max": g["acc_max"]})
    out.update(_group("orig", org_tr, org_ho, train, held))
    out.update(_group("noise", noi_tr, noi_ho, train, held))
    out["ensemble_acc"] = float((org_ho.probs_sum.argmax(1) == held.labels).float().mean())

    wrong_g, wrong_o, wrong_n = (p.labels != held.labels[None] for p in (gen_ho, org_ho, noi_ho))
    go = wrong_iou(wrong_g, wrong_o)
    out["iou_orig_orig"] = _mean_offdiag(wrong_iou(wrong_o, wrong_o))
    out["iou_gen_gen"] = _mean_offdiag(wrong_iou(wrong_g, wrong_g))
    out["iou_gen_orig"] = float(go.mean())
    out["iou_gen_nearest_orig"] = float(go.max(1).values.mean())
    if per_model is not None:
        per_model.update({"nearest_original": go.argmax(1).tolist(), "nearest_iou": [round(float(x), 4) for x in go.max(1).values],
                          "accuracy": [round(float(x), 4) for x in accuracies(gen_ho.labels, held.labels)]})
    out["iou_noise_nearest_orig"] = float(wrong_iou(wrong_n, wrong_o).max(1).values.mean())

    # Parameter space: nearest-original distance relative to the originals' own spacing.
    if originals.shape[0] > 1:
        d = torch.cdist(originals.double(), originals.double())
        d.fill_diagonal_(float("inf"))
        spacing = float(d.min(1).values.median())
    else:
        spacing = 1.0
    spacing = max(spacing, 1e-12)
    near_g = _nearest_distance(generated, originals, spacing)
    out["dist_gen_nearest_orig"] = float(near_g.median())
    out["dist_noise_nearest_orig"] = float(_nearest_distance(noisy, originals, spacing).median())
    out["share_gen_within_orig_spacing"] = float((near_g <= 1.0).float().mean())
    centre = originals.mean(0, keepdim=True)
    out["dist_gen_orig_mean"] = float(_nearest_distance(generated, centre, spacing).median())
    out["dist_orig_orig_mean"] = float(_nearest_distance(originals, centre, spacing).median())  # the originals' own spread
    out["distinct_generated"] = float(torch.unique(gen_ho.labels, dim=0).shape[0] / max(generated.shape[0], 1))
    return out


def quick(evaluator: SubsetEvaluator, generated: torch.Tensor, train: Split) -> dict[str, float]:
    """Train-split accuracies of a few generated models, for the pruner (never the held-out split)."""
    acc = accuracies(evaluator.predict(generated, train).labels, train.labels)
    return {"acc_best_quick": float(acc.max()), "acc_mean_quick": float(acc.mean()),
            "acc_median_quick": float(acc.median())}
