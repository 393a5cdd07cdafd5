"""Augmentation on the batch: shifts, elastic distortion, mixup and cutmix."""

import pytest
import torch

from digit_recognizer.data.augment import BatchRandomWarp, batch_mixer
from digit_recognizer.data.datamodule import to_model_input

from helpers.data import random_digits


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
