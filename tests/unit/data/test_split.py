"""The stratified validation split and the K folds."""

from __future__ import annotations

import torch

from digit_recognizer.data.split import stratified_split, stratified_fold



# -- split --------------------------------------------------------------------------------------

def kaggle_like_labels(n: int = 42_000) -> torch.Tensor:
    generator = torch.Generator().manual_seed(3)
    return torch.multinomial(torch.linspace(0.8, 1.2, 10), n, replacement=True, generator=generator)


def test_split_sizes_match_the_reference():
    train, val = stratified_split(kaggle_like_labels(), 0.1, seed=42)
    assert (len(train), len(val)) == (37_800, 4_200)
    assert len(torch.cat([train, val]).unique()) == 42_000


def test_split_is_stratified():
    labels = kaggle_like_labels()
    _, val = stratified_split(labels, 0.1, seed=0)
    whole = torch.bincount(labels, minlength=10).double() / len(labels)
    held = torch.bincount(labels[val], minlength=10).double() / len(val)
    assert (whole - held).abs().max() < 1 / len(val) * 1.01  # within one image per class


def test_split_is_deterministic_and_seeded():
    labels = kaggle_like_labels(5_000)
    assert torch.equal(stratified_split(labels, 0.1, 1)[1], stratified_split(labels, 0.1, 1)[1])
    assert not torch.equal(stratified_split(labels, 0.1, 1)[1], stratified_split(labels, 0.1, 2)[1])


def test_split_zero_fraction_keeps_everything():
    train, val = stratified_split(kaggle_like_labels(100), 0.0, seed=0)
    assert len(train) == 100 and len(val) == 0


def test_folds_are_disjoint_stratified_and_cover_every_row_once():
    labels = torch.arange(1000) % 10
    held_out = [stratified_fold(labels, 5, fold, seed=42)[1] for fold in range(5)]
    assert sorted(torch.cat(held_out).tolist()) == list(range(1000)), "every row validates exactly once"
    for fold, val in enumerate(held_out):
        train, same_val = stratified_fold(labels, 5, fold, seed=42)
        assert torch.equal(val, same_val) and not set(train.tolist()) & set(val.tolist())
        assert torch.bincount(labels[val]).tolist() == [20] * 10, "each digit spread evenly over the folds"
    other_seed = stratified_fold(labels, 5, 0, seed=7)[1]
    assert not torch.equal(held_out[0], other_seed), "split_seed shuffles the assignment"
