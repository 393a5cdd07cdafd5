"""A user's own digit images, drawn here with PIL, come out in MNIST's form."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from digit_recognizer.constants import IMAGE_SIZE
from digit_recognizer.data.images import expand_image_paths, read_images, to_mnist_form
from digit_recognizer.errors import DataError

from helpers.errors import raises_one_line


MIDDLE = (IMAGE_SIZE - 1) / 2  # the field's centre in pixel indices


def draw_zero(size: tuple[int, int], box: tuple[int, int, int, int], ink: int, paper: int, width: int = 8) -> Image.Image:
    image = Image.new("L", size, paper)
    ImageDraw.Draw(image).ellipse(box, outline=ink, width=width)
    return image


def draw_seven(size: tuple[int, int], at: tuple[int, int], scale: int, width: int = 3) -> Image.Image:
    """A 7 (lopsided: its mass sits high and right) of height 2 x scale, white on black."""
    image = Image.new("L", size, 0)
    x, y = at
    draw = ImageDraw.Draw(image)
    draw.line([(x, y), (x + scale, y)], fill=255, width=width)
    draw.line([(x + scale, y), (x + scale // 3, y + 2 * scale)], fill=255, width=width)
    return image


def photo_like(image: Image.Image, seed: int = 0) -> Image.Image:
    """Dark ink on light-gray paper with sensor noise and uneven lighting, like a phone photo."""
    generator = np.random.default_rng(seed)
    ink = np.asarray(image, dtype=np.float32) / 255
    height, width = ink.shape
    lighting = 185 + 25 * np.linspace(0, 1, width)[None, :] * np.linspace(0.5, 1, height)[:, None]
    pixels = lighting * (1 - 0.8 * ink) + generator.normal(0, 10, ink.shape)
    return Image.fromarray(np.clip(pixels, 0, 255).round().astype(np.uint8)).convert("RGB")


def centre_of_mass(image: torch.Tensor) -> tuple[float, float]:
    weights = image.double()
    rows, cols = torch.meshgrid(torch.arange(IMAGE_SIZE), torch.arange(IMAGE_SIZE), indexing="ij")
    return float((weights * rows).sum() / weights.sum()), float((weights * cols).sum() / weights.sum())


def bounding_box(image: torch.Tensor, level: int = 0) -> tuple[int, int]:
    """(height, width) of the pixels brighter than `level`."""
    rows = torch.nonzero((image > level).any(dim=1)).flatten()
    cols = torch.nonzero((image > level).any(dim=0)).flatten()
    return int(rows[-1] - rows[0] + 1), int(cols[-1] - cols[0] + 1)


def overlap(a: torch.Tensor, b: torch.Tensor) -> float:
    """Intersection over union of the two images' bright (> 127) pixels."""
    a, b = a > 127, b > 127
    return float((a & b).sum() / (a | b).sum())


def test_a_dark_digit_on_noisy_light_paper_comes_out_white_on_black_like_a_clean_one(tmp_path: Path):
    clean = draw_zero((240, 180), (70, 40, 140, 150), ink=255, paper=0)
    path = tmp_path / "photo.jpg"
    photo_like(clean).save(path, quality=85)
    (image,), read, failures = read_images([path])
    assert read == [path] and failures == []
    assert image.dtype == torch.uint8 and image.shape == (IMAGE_SIZE, IMAGE_SIZE)
    border = torch.cat([image[:3].flatten(), image[-3:].flatten(), image[:, :3].flatten(), image[:, -3:].flatten()])
    assert border.max() == 0, "the paper and its noise must become black"
    assert image.max() == 255 and (image > 127).sum() > 60, "the stroke must become white"
    assert image[10:18, 10:18].float().mean() < 3, "the paper's noise inside the zero's hole must become black"
    assert overlap(image, to_mnist_form(clean)) > 0.7


def test_a_small_off_centre_digit_is_centred_by_its_mass_and_fits_20x20():
    image = to_mnist_form(draw_seven((120, 90), at=(70, 5), scale=12))
    row, col = centre_of_mass(image)
    assert abs(row - MIDDLE) <= 1 and abs(col - MIDDLE) <= 1, (row, col)
    height, width = bounding_box(image)
    assert max(height, width) <= 20 and max(bounding_box(image, 60)) >= 19, (height, width)


def test_a_digit_whose_mass_sits_high_is_shifted_down_not_box_centred():
    image = to_mnist_form(draw_seven((60, 60), at=(10, 10), scale=15, width=5))
    rows = torch.nonzero(image.any(dim=1)).flatten()
    box_middle = (rows[0] + rows[-1]).item() / 2
    assert box_middle > MIDDLE + 1, "MNIST centres the mass, so a 7's box lies below the middle"


@pytest.mark.parametrize("tall", [True, False])
def test_the_aspect_ratio_is_kept(tall: bool):
    image = Image.new("L", (100, 100), 0)
    stroke = [(47, 20), (47, 80)] if tall else [(20, 47), (80, 47)]
    ImageDraw.Draw(image).line(stroke, fill=255, width=6)
    long_side, short_side = bounding_box(to_mnist_form(image), level=60)[:: 1 if tall else -1]
    assert long_side in (19, 20) and short_side <= 4, (long_side, short_side)  # 60 x 6 -> 20 x 2


def test_a_black_digit_on_a_transparent_canvas_becomes_white_on_black():
    image = Image.new("RGBA", (80, 80), (0, 0, 0, 0))
    ImageDraw.Draw(image).ellipse((20, 10, 60, 70), outline=(0, 0, 0, 255), width=6)
    digit = to_mnist_form(image)
    assert digit[0, 0] == 0 and (digit > 127).sum() > 60


def test_an_image_already_in_mnist_form_stays_as_it_is():
    once = to_mnist_form(draw_zero((28, 28), (8, 4, 20, 24), ink=255, paper=0, width=3))
    twice = to_mnist_form(Image.fromarray(once.numpy()))
    assert overlap(once, twice) > 0.9
    assert (once.float() - twice.float()).abs().mean() < 8


def test_unreadable_and_blank_files_are_reported_and_the_others_still_read(tmp_path: Path):
    good = [tmp_path / "a.png", tmp_path / "e.bmp"]
    for path in good:
        draw_zero((50, 50), (10, 5, 40, 45), ink=0, paper=255, width=4).save(path)
    corrupt = tmp_path / "b.png"
    corrupt.write_bytes(good[0].read_bytes()[:60])  # a PNG cut short
    text = tmp_path / "c.png"
    text.write_text("ImageId,Label\n1,7\n")
    blank = tmp_path / "d.png"
    Image.new("L", (40, 40), 200).save(blank)
    images, read, failures = read_images([good[0], corrupt, text, blank, good[1]])
    assert read == good and images.shape == (2, IMAGE_SIZE, IMAGE_SIZE)
    assert torch.equal(images[0], images[1])
    reasons = dict(failures)
    assert list(reasons) == [corrupt, text, blank]
    assert "corrupt or truncated" in reasons[corrupt]
    assert "not an image" in reasons[text]
    assert "no digit" in reasons[blank]
    assert all("\n" not in reason for reason in reasons.values())


def test_nothing_readable_gives_an_empty_batch(tmp_path: Path):
    path = tmp_path / "x.jpg"
    path.write_bytes(b"\xff\xd8\xff garbage")
    images, read, failures = read_images([path])
    assert images.shape == (0, IMAGE_SIZE, IMAGE_SIZE) and images.dtype == torch.uint8
    assert read == [] and [p for p, _ in failures] == [path]


def test_a_file_a_folder_and_globs_name_the_images(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    image = draw_zero((30, 30), (5, 5, 25, 25), ink=255, paper=0, width=3)
    (tmp_path / "sub").mkdir()
    names = ["b.png", "a.JPG", "sub/c.png"]
    for name in names:
        image.save(tmp_path / name, format="PNG" if name.endswith("png") else "JPEG")
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / ".hidden.png").write_bytes(b"")
    assert expand_image_paths(str(tmp_path / "b.png")) == [tmp_path / "b.png"]
    assert expand_image_paths(str(tmp_path)) == [tmp_path / "a.JPG", tmp_path / "b.png"]
    assert expand_image_paths(str(tmp_path / "*.png")) == [tmp_path / "b.png"]
    assert expand_image_paths(str(tmp_path / "**" / "*.png")) == [tmp_path / "b.png", tmp_path / "sub" / "c.png"]
    monkeypatch.chdir(tmp_path)
    assert expand_image_paths("sub/*") == [Path("sub/c.png")]
    images, read, failures = read_images(expand_image_paths(str(tmp_path)))
    assert len(images) == 2 and failures == []


def test_nothing_to_read_is_a_data_error_naming_the_spec(tmp_path: Path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no images here")
    for spec, message in ((tmp_path / "missing.png", "no such file or folder"),
                          (tmp_path / "empty", "no image files"),
                          (tmp_path / "*.webp", "no files match")):
        with raises_one_line(DataError, match=message) as raised:
            expand_image_paths(str(spec))
        assert str(raised.value).startswith(str(spec))
