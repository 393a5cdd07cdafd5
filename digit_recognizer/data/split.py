"""Which rows of train.csv validate: a stratified, seeded split, or one fold of a stratified K-fold split."""

from __future__ import annotations

import torch
from sklearn.model_selection import StratifiedKFold
from torch import Tensor


def stratified_split(labels: Tensor, val_fraction: float, seed: int) -> tuple[Tensor, Tensor]:
    """Indices (train, val) with each class in the same proportion in both parts.

    The validation size is round(val_fraction * N) exactly (42,000 rows at 0.1 give 37,800/4,200);
    classes get their share by largest remainder, and the same seed always gives the same split.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    generator = torch.Generator().manual_seed(seed)
    classes, counts = torch.unique(labels, return_counts=True)
    n_val = round(val_fraction * len(labels))
    exact = counts.double() * n_val / len(labels)
    per_class = exact.floor().long()
    shortfall = n_val - int(per_class.sum())
    per_class[torch.argsort(exact - per_class, descending=True, stable=True)[:shortfall]] += 1

    train, val = [], []
    for cls, take in zip(classes, per_class.tolist()):
        members = torch.nonzero(labels == cls).flatten()
        members = members[torch.randperm(len(members), generator=generator)]
        val.append(members[:take])
        train.append(members[take:])
    return torch.cat(train).sort().values, torch.cat(val).sort().values


def stratified_fold(labels: Tensor, folds: int, fold: int, seed: int) -> tuple[Tensor, Tensor]:
    """Indices (train, val) of fold `fold` of a stratified K-fold split: the K validation parts
    are disjoint and together hold every row once, each class spread evenly over them.

    scikit-learn's StratifiedKFold (shuffled by `seed`) makes the folds, as Kaggle competitors'
    out-of-fold scores are usually made; a class with fewer rows than `folds` is a ValueError.
    """
    if folds < 2:
        raise ValueError(f"folds must be at least 2, got {folds}")
    if not 0 <= fold < folds:
        raise ValueError(f"fold must be in 0..{folds - 1}, got {fold}")
    smallest = int(torch.unique(labels, return_counts=True)[1].min())
    if folds > smallest:
        raise ValueError(f"folds {folds} is more than the smallest class has rows ({smallest})")
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    train, val = list(splitter.split(labels.numpy().reshape(-1, 1), labels.numpy()))[fold]
    return torch.from_numpy(train), torch.from_numpy(val)
