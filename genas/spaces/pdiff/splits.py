"""The train / held-out split every pdiff trial uses: deterministic per dataset, stratified by class.

Stage 1 (the checkpoints) and every selection (best model on train, the pruner's quick metric)
only ever see the train split; the held-out split is only reported on. The split's seed is fixed
(not the trial's), so every trial of every study on a dataset holds out the same images.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from genas.data import Dataset
from genas.errors import GenasError

HELD_OUT_FRACTION = 0.2
SPLIT_SEED = 20240220


@dataclass(frozen=True)
class Split:
    images: torch.Tensor  # [N, C, R, R] in [-1, 1]
    labels: torch.Tensor  # int64 [N]

    def __len__(self) -> int:
        return self.labels.shape[0]


def require_labels(dataset: Dataset) -> torch.Tensor:
    if dataset.labels is None:
        raise GenasError(f"dataset {dataset.name} has no class labels and pdiff trains classifiers; "
                         "use mnist5k, digits or cifar10:PATH")
    return dataset.labels


def train_heldout(dataset: Dataset, fraction: float = HELD_OUT_FRACTION) -> tuple[Split, Split]:
    """(train, held-out): ``fraction`` of each class held out, chosen and ordered by a fixed seed."""
    labels = require_labels(dataset)
    gen = torch.Generator().manual_seed(SPLIT_SEED)
    held = torch.zeros(labels.shape[0], dtype=torch.bool)
    for c in labels.unique():
        idx = (labels == c).nonzero().squeeze(1)
        take = idx[torch.randperm(idx.numel(), generator=gen)[: max(1, round(idx.numel() * fraction))]]
        held[take] = True
    # A fixed shuffle, so that the first n images of a split are a random sample (mnist5k is sorted by class).
    train, test = (~held).nonzero().squeeze(1), held.nonzero().squeeze(1)
    train, test = train[torch.randperm(train.numel(), generator=gen)], test[torch.randperm(test.numel(), generator=gen)]
    return (Split(dataset.images[train], labels[train]), Split(dataset.images[test], labels[test]))


def head(split: Split, n: int) -> Split:
    """The first ``n`` images of a split (all when ``n`` is 0): a random sample, as splits are shuffled."""
    return split if not n or n >= len(split) else Split(split.images[:n], split.labels[:n])
