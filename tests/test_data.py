"""Cache, split, augmentation and the DataModule."""

import os
from pathlib import Path

import pytest
import torch

from digit_recognizer.data import cache as cache_module
from digit_recognizer.data.augment import BatchRandomWarp, batch_mixer
from digit_recognizer.data.cache import load_digits
from digit_recognizer.data.csv import write_digits_csv
from digit_recognizer.data.datamodule import KaggleDigitsDataModule, to_model_input
from digit_recognizer.data.split import stratified_split
from digit_recognizer.errors import DataError

from conftest import raises_one_line, random_digits


# -- cache --------------------------------------------------------------------------------------

@pytest.fixture
def csv_file(tmp_path: Path) -> Path:
    path = tmp_path / "train.csv"
    write_digits_csv(path, *random_digits(40))
    return path


def count_parses(monkeypatch) -> list:
    calls = []
    real = cache_module.read_digits_csv
    monkeypatch.setattr(cache_module, "read_digits_csv", lambda *a, **k: calls.append(a) or real(*a, **k))
    return calls


def test_cache_hit_skips_parsing(csv_file, tmp_path, monkeypatch):
    calls = count_parses(monkeypatch)
    first = load_digits(csv_file, labelled=True, cache_dir=tmp_path / "cache")
    second = load_digits(csv_file, labelled=True, cache_dir=tmp_path / "cache")
    assert len(calls) == 1
    assert torch.equal(first.images, second.images) and torch.equal(first.labels, second.labels)


def test_cache_rebuilt_when_csv_changes(csv_file, tmp_path, monkeypatch):
    cache_dir = tmp_path / "cache"
    load_digits(csv_file, labelled=True, cache_dir=cache_dir)
    images, labels = random_digits(40, seed=7)
    write_digits_csv(csv_file, images, labels)
    stat = csv_file.stat()  # same size, so only the timestamp tells: make sure it moved
    os.utime(csv_file, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    calls = count_parses(monkeypatch)
    reloaded = load_digits(csv_file, labelled=True, cache_dir=cache_dir)
    assert len(calls) == 1 and torch.equal(reloaded.images, images)


def test_cache_rebuilt_when_csv_is_replaced_keeping_size_and_mtime(csv_file, tmp_path, monkeypatch):
    cache_dir = tmp_path / "cache"
    load_digits(csv_file, labelled=True, cache_dir=cache_dir)
    before = csv_file.stat()
    header, first, rest = csv_file.read_text().split("\n", 2)
    csv_file.write_text("\n".join([header, "7" + first[1:], rest]))  # another label, same size
    os.utime(csv_file, ns=(before.st_atime_ns, before.st_mtime_ns))  # as `cp -p` or `rsync -t` leave it
    assert csv_file.stat().st_size == before.st_size and first[0] != "7"
    calls = count_parses(monkeypatch)
    reloaded = load_digits(csv_file, labelled=True, cache_dir=cache_dir)
    assert len(calls) == 1 and reloaded.labels[0] == 7


@pytest.mark.parametrize("damage", ["truncate", "garbage", "tampered"])
def test_corrupt_cache_is_rebuilt(csv_file, tmp_path, monkeypatch, damage):
    cache_dir = tmp_path / "cache"
    expected = load_digits(csv_file, labelled=True, cache_dir=cache_dir)
    (entry,) = cache_dir.iterdir()
    if damage == "truncate":
        entry.write_bytes(entry.read_bytes()[:100])
    elif damage == "garbage":
        entry.write_bytes(b"not a torch file")
    else:  # a valid file whose tensors no longer match their checksum
        blob = torch.load(entry, weights_only=True)
        blob["images"][0, 0, 0] ^= 1
        torch.save(blob, entry)
    calls = count_parses(monkeypatch)
    digits = load_digits(csv_file, labelled=True, cache_dir=cache_dir)
    assert len(calls) == 1 and torch.equal(digits.images, expected.images)
    calls.clear()
    load_digits(csv_file, labelled=True, cache_dir=cache_dir)
    assert not calls, "the rebuilt cache should be used again"


def test_cache_keeps_labelled_and_unlabelled_apart(tmp_path):
    path = tmp_path / "test.csv"
    write_digits_csv(path, random_digits(5)[0], None)
    assert load_digits(path, labelled=False, cache_dir=tmp_path / "c").labels is None
    with raises_one_line(DataError, match="label"):
        load_digits(path, labelled=True, cache_dir=tmp_path / "c")


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


# -- augmentation -------------------------------------------------------------------------------

def digit_batch(n: int = 16) -> torch.Tensor:
    return to_model_input(random_digits(n)[0])


def test_augmentation_shape_and_range():
    batch = digit_batch()
    out = BatchRandomWarp(10, 0.1, 0.1)(batch)
    assert out.shape == batch.shape and out.dtype == batch.dtype
    assert out.min() >= 0 and out.max() <= 1


def test_augmentation_off_is_identity():
    batch = digit_batch()
    assert torch.equal(BatchRandomWarp(0, 0, 0)(batch), batch)


def test_augmentation_differs_between_calls_and_images():
    batch = digit_batch(8)
    augment = BatchRandomWarp(10, 0.1, 0.1)
    first, second = augment(batch), augment(batch)
    assert not torch.allclose(first, second)
    same_image = batch[:1].expand(8, -1, -1, -1)
    out = augment(same_image)
    assert not torch.allclose(out[0], out[1]), "each image should get its own transform"


def test_shift_moves_content_by_at_most_the_range():
    image = torch.zeros(1, 1, 28, 28)
    image[..., 12:16, 12:16] = 1.0
    moved = BatchRandomWarp(0, 0, 0.1)(image.expand(64, -1, -1, -1))
    rows = (moved.sum(dim=3) > 0.5).float().argmax(dim=2).flatten()
    assert rows.min() >= 12 - 3 and rows.max() <= 12 + 3  # 10% of 28 is 2.8 pixels
    assert rows.unique().numel() > 1


def test_elastic_distortion_moves_pixels_locally_and_per_image():
    batch = digit_batch(8)
    warp = BatchRandomWarp(0, 0, 0, elastic_alpha=20, elastic_sigma=4)
    out = warp(batch)
    assert out.shape == batch.shape and out.min() >= 0 and out.max() <= 1
    assert not torch.allclose(out, batch)
    same_image = batch[:1].expand(8, -1, -1, -1)
    assert not torch.allclose(warp(same_image)[0], warp(same_image)[1]), "each image should get its own field"


def test_elastic_field_is_smooth_and_scaled_by_alpha():
    def field(alpha: float) -> torch.Tensor:
        torch.manual_seed(0)
        return BatchRandomWarp(0, 0, 0, alpha, 4).elastic_displacement(64, 28, 28, torch.device("cpu")) * 14

    pixels = field(20)  # grid units -> pixels (14 per grid unit on a 28-pixel side)
    assert torch.allclose(field(40), 2 * pixels)
    size = pixels.abs().mean()
    assert 0.3 < size < 3, f"mean displacement {size:.2f} px"  # a pixel or so, not the whole image
    neighbour_step = (pixels[:, 1:] - pixels[:, :-1]).abs().mean()
    assert neighbour_step < 0.25 * size, "neighbouring pixels should move together (Gaussian smoothing)"


def test_augmentation_rejects_bad_ranges():
    with pytest.raises(ValueError, match=r"zoom must be in \[0, 1\), got 1.5"):
        BatchRandomWarp(zoom=1.5)
    with pytest.raises(ValueError, match="elastic_alpha must be >= 0"):
        BatchRandomWarp(elastic_alpha=-1)


@pytest.mark.parametrize("mixup, cutmix", [(0.2, 0.0), (0.0, 1.0), (0.2, 1.0)])
def test_batch_mixer_blends_images_and_labels_within_the_batch(mixup, cutmix):
    """Image i is mixed with image i-1 (the batch rolled by one); labels carry the same shares:
    MixUp blends every pixel, CutMix takes each pixel from one image (a box from the other)."""
    torch.manual_seed(0)
    shades = torch.linspace(0.1, 0.8, 8)
    images, labels = shades.view(8, 1, 1, 1).expand(8, 1, 28, 28).clone(), torch.arange(8)
    mixer = batch_mixer(mixup, cutmix, num_classes=10)
    kinds = set()
    for _ in range(8):  # with both on, each call uses one of the two
        mixed, targets = mixer(images, labels)
        assert mixed.shape == images.shape and targets.shape == (8, 10)
        own, other = targets[torch.arange(8), labels], targets[torch.arange(8), labels.roll(1)]
        assert torch.allclose(own + other, torch.ones(8)) and torch.allclose(targets.sum(dim=1), torch.ones(8))
        from_other = (mixed - shades.roll(1).view(8, 1, 1, 1)).abs() < 1e-6
        from_own = (mixed - shades.view(8, 1, 1, 1)).abs() < 1e-6
        if (from_own | from_other).all():  # CutMix: the box's share of the area is the label's share
            kinds.add("cutmix")
            assert torch.allclose(from_other.float().mean(dim=(1, 2, 3)), other, atol=1e-6)
        else:
            kinds.add("mixup")
            blend = own * shades + other * shades.roll(1)
            assert torch.allclose(mixed, blend.view(8, 1, 1, 1).expand_as(mixed), atol=1e-6)
    assert kinds == {name for name, alpha in (("mixup", mixup), ("cutmix", cutmix)) if alpha > 0}


def test_batch_mixer_is_off_at_zero_and_rejects_negative_alphas():
    assert batch_mixer(0, 0) is None
    with pytest.raises(ValueError, match="cutmix_alpha must be >= 0, got -1"):
        batch_mixer(0.2, -1)


# -- DataModule ---------------------------------------------------------------------------------

def datamodule(data_dir: Path, **kwargs) -> KaggleDigitsDataModule:
    return KaggleDigitsDataModule(data_dir=str(data_dir), download=False, batch_size=32, **kwargs)


def test_datamodule_splits_and_batches(tiny_data):
    dm = datamodule(tiny_data)
    dm.setup("fit")
    assert len(dm.train_set) == 180 and len(dm.val_set) == 20
    images, labels, rows = next(iter(dm.train_dataloader()))
    assert images.dtype == torch.uint8 and images.shape == (32, 28, 28) and labels.dtype == torch.int64
    dm.setup("predict")
    assert len(dm.predict_set) == 50


def test_datamodule_val_fraction_zero_has_no_validation(tiny_data):
    dm = datamodule(tiny_data, val_fraction=0.0)
    dm.setup("fit")
    assert len(dm.train_set) == 200 and dm.val_dataloader() == []


def test_batch_transfer_scales_and_augments_only_in_training(tiny_data):
    class FakeTrainer:
        training = False

    dm = datamodule(tiny_data)
    dm.trainer = FakeTrainer()
    batch = [random_digits(4)[0], torch.zeros(4, dtype=torch.long)]
    plain = dm.on_after_batch_transfer(batch, 0)[0]
    assert plain.shape == (4, 1, 28, 28) and torch.equal(plain, to_model_input(batch[0]))
    FakeTrainer.training = True
    assert not torch.equal(dm.on_after_batch_transfer(batch, 0)[0], plain)


def test_batch_transfer_mixes_images_and_labels_only_in_training(tiny_data):
    class FakeTrainer:
        training = False

    dm = datamodule(tiny_data, mixup_alpha=0.4, rotation_degrees=0, zoom=0, shift=0)
    dm.trainer = FakeTrainer()
    batch = [random_digits(4)[0], torch.tensor([0, 1, 2, 3])]
    assert torch.equal(dm.on_after_batch_transfer(batch, 0)[1], batch[1])
    FakeTrainer.training = True
    images, targets = dm.on_after_batch_transfer(batch, 0)
    assert targets.shape == (4, 10) and not torch.equal(images, to_model_input(batch[0]))
    unmixed = datamodule(tiny_data, mixup_alpha=0.4, augment=False)
    unmixed.trainer = FakeTrainer()
    assert torch.equal(unmixed.on_after_batch_transfer(batch, 0)[1], batch[1]), "augment false: no mixing"


def test_bad_val_fraction_is_rejected(tiny_data):
    with raises_one_line(DataError, match="val_fraction"):
        datamodule(tiny_data, val_fraction=1.0)


