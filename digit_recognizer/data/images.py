"""A user's own digit images (PNG, JPEG, any format PIL reads) in the competition's form.

The network only ever saw MNIST-style digits: white on black, the digit scaled (keeping its
aspect ratio, antialiased) to fit a 20x20 box and placed in a 28x28 field so that its centre of
mass is the field's centre. A photo of a digit written on paper is dark on light, off-centre,
any size and noisy; `to_mnist_form` applies MNIST's procedure to it, so that predictions on it
mean what the validation accuracy says they mean.

    paths = expand_image_paths("my_digits/")            # a file, a folder or a glob
    images, read, failures = read_images(paths)         # (N, 28, 28) uint8, as the CSVs hold
    for path, reason in failures:
        print(f"{path}: {reason}")
"""

from __future__ import annotations

import glob
import math
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError
from torch import Tensor

from digit_recognizer.constants import IMAGE_SIZE, PIXEL_MAX
from digit_recognizer.errors import DataError

DIGIT_BOX = 20  # MNIST's digits fit a 20x20 box inside the 28x28 field
MAX_SIDE = 1024  # larger photos are shrunk first: the digit ends up 20 px high anyway
BORDER_FRACTION = 0.05  # the outer ring (of the shorter side) that is taken to be background
MIN_CONTRAST = 0.1  # of the full 0..1 range: less than this between digit and background is blank
NOISE_SIGMAS = 3.0  # background noise within this many standard deviations counts as background
BOX_LEVEL = 0.25  # the bounding box holds the pixels this far from background to the digit's level
INK_QUANTILE = 0.9  # the digit's pixels this bright or brighter become full white (255)
_GLOB_CHARACTERS = frozenset("*?[")


def image_suffixes() -> frozenset[str]:
    """File endings of the formats PIL can open (".png", ".jpg", ...), lower case."""
    return frozenset(ext for ext, fmt in Image.registered_extensions().items() if fmt in Image.OPEN)


def expand_image_paths(spec: str | Path) -> list[Path]:
    """The files `spec` names: one file, a folder's images, or a glob (`**` recurses).

    A file or a glob's matches are taken as they are (a non-image among them becomes a failure
    of `read_images`); in a folder only files with an image format's ending count, hidden ones
    not, so a README or .DS_Store beside the images is no failure. Both are sorted by path.
    Nothing to read is a DataError naming `spec`.
    """
    text = str(spec)
    path = Path(text).expanduser()
    if path.is_file():
        return [path]
    if path.is_dir():
        suffixes = image_suffixes()
        found = sorted(p for p in path.iterdir()
                       if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in suffixes)
        if not found:
            raise DataError(f"{text}: no image files in this folder (.png, .jpg and the other formats PIL reads)")
        return found
    if _GLOB_CHARACTERS & set(text):
        found = sorted(Path(p) for p in glob.glob(str(path), recursive=True) if Path(p).is_file())
        if not found:
            raise DataError(f"{text}: no files match this pattern")
        return found
    raise DataError(f"{text}: no such file or folder")


def read_images(paths: Iterable[str | Path]) -> tuple[Tensor, list[Path], list[tuple[Path, str]]]:
    """Each file in MNIST's form: (images (N, 28, 28) uint8, the N paths read, failures).

    A file that cannot be read (not an image, corrupt, truncated) or shows no digit becomes one
    (path, reason) failure, a one-line reason without the path, and the others are still read.
    """
    images: list[Tensor] = []
    read: list[Path] = []
    failures: list[tuple[Path, str]] = []
    for path in map(Path, paths):
        try:
            images.append(to_mnist_form(open_image(path)))
        except DataError as exc:
            failures.append((path, str(exc)))
        else:
            read.append(path)
    stacked = torch.stack(images) if images else torch.empty(0, IMAGE_SIZE, IMAGE_SIZE, dtype=torch.uint8)
    return stacked, read, failures


def open_image(path: Path) -> Image.Image:
    """The file's (first) image, fully decoded and turned upright as its EXIF says (phone photos).

    Anything PIL cannot decode is a DataError whose one-line message says why (without the path).
    """
    try:
        with Image.open(path) as opened:
            opened.load()  # PIL decodes lazily: a truncated file only fails here
            return ImageOps.exif_transpose(opened)
    except UnidentifiedImageError:
        raise DataError("not an image file PIL can read") from None
    except Image.DecompressionBombError as exc:
        raise DataError(f"too large to decode safely ({exc})") from None
    except (OSError, ValueError, SyntaxError) as exc:  # truncated or corrupt data; SyntaxError: PIL's parse errors
        raise DataError(f"corrupt or truncated image ({exc})") from None


def to_mnist_form(image: Image.Image) -> Tensor:
    """(28, 28) uint8, white digit on black, the way MNIST's digits were made.

    Grayscale; inverted when the digit is darker than the background (the border's median);
    the background level and its noise subtracted; cropped to the digit's bounding box; scaled
    to fit 20x20 keeping the aspect ratio; pasted into 28x28 with its centre of mass in the
    middle. An image with no digit (too little contrast) is a DataError.
    """
    gray = _grayscale(image)
    if max(gray.size) > MAX_SIDE:
        gray.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS)
    pixels = np.asarray(gray, dtype=np.float32) / PIXEL_MAX
    digit = _digit_only(pixels)
    return _centre(_fit_box(digit))


def _grayscale(image: Image.Image) -> Image.Image:
    """Mode "L"; transparent pixels become the background, opposite in colour to the opaque ones
    (a black digit drawn on a transparent canvas must not vanish into black)."""
    if image.mode.startswith("I;16"):  # 16-bit grayscale: convert("L") would clip it, not scale it
        image = Image.fromarray((np.asarray(image, dtype=np.float32) / 257).round().astype(np.uint8))
    if image.mode in ("P", "PA") or "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode not in ("RGBA", "LA", "La", "RGBa"):
        return image.convert("L")
    alpha = np.asarray(image.getchannel("A"), dtype=np.float32) / PIXEL_MAX
    gray = np.asarray(image.convert("L"), dtype=np.float32)
    if alpha.min() == 1.0 or alpha.sum() == 0.0:
        return Image.fromarray(gray.astype(np.uint8))
    ink = float((gray * alpha).sum() / alpha.sum())
    background = PIXEL_MAX if ink < PIXEL_MAX / 2 else 0.0
    composed = gray * alpha + background * (1.0 - alpha)
    return Image.fromarray(composed.round().astype(np.uint8))


def _border(pixels: np.ndarray) -> np.ndarray:
    """The outer ring of pixels, where a photo of a digit shows only paper."""
    width = max(1, round(BORDER_FRACTION * min(pixels.shape)))
    return np.concatenate([pixels[:width].ravel(), pixels[-width:].ravel(),
                           pixels[:, :width].ravel(), pixels[:, -width:].ravel()])


def _smoothed(pixels: np.ndarray) -> np.ndarray:
    """A Gaussian blur (sigma 1 px): a noisy background's single bright pixels no longer look like ink."""
    offsets = torch.arange(-3, 4, dtype=torch.float32)
    kernel = torch.exp(-offsets**2 / 2)
    kernel = kernel / kernel.sum()
    image = torch.from_numpy(pixels)[None, None]
    image = F.pad(image, (3, 3, 3, 3), mode="replicate")
    image = F.conv2d(image, kernel.view(1, 1, 1, -1))
    image = F.conv2d(image, kernel.view(1, 1, -1, 1))
    return image[0, 0].numpy()


def _digit_only(pixels: np.ndarray) -> np.ndarray:
    """The digit's bounding box of `pixels` (0..1), white on black with the background at 0."""
    smooth = _smoothed(pixels)
    border = _border(pixels)
    background = float(np.median(border))
    if background - smooth.min() > smooth.max() - background:  # the digit is darker than the paper
        pixels, smooth, border, background = 1.0 - pixels, 1.0 - smooth, 1.0 - border, 1.0 - background
    noise = 1.4826 * float(np.median(np.abs(border - background)))  # the border's standard deviation, robustly
    contrast = float(smooth.max()) - background
    if contrast < max(MIN_CONTRAST, NOISE_SIGMAS * noise):
        raise DataError("no digit found: the image is blank or has too little contrast")
    mask = smooth > background + max(BOX_LEVEL * contrast, NOISE_SIGMAS * noise)
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    top, bottom, left, right = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    floor = background + NOISE_SIGMAS * noise
    ink = max(float(np.quantile(pixels[mask], INK_QUANTILE)), floor + MIN_CONTRAST / 2)
    return np.clip((pixels[top:bottom, left:right] - floor) / (ink - floor), 0.0, 1.0)


def _fit_box(digit: np.ndarray) -> np.ndarray:
    """Scaled (antialiased, aspect ratio kept) so that its longer side is 20 pixels."""
    height, width = digit.shape
    scale = DIGIT_BOX / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    scaled = Image.fromarray(digit.astype(np.float32)).resize(size, Image.Resampling.LANCZOS)
    return np.clip(np.asarray(scaled, dtype=np.float32), 0.0, 1.0)  # Lanczos overshoots a little at edges


def _centre(digit: np.ndarray) -> Tensor:
    """Pasted into 28x28 so that its centre of mass lands on the field's centre (to the nearest pixel)."""
    height, width = digit.shape
    total = float(digit.sum())
    centre_row = float((digit.sum(axis=1) * np.arange(height)).sum()) / total
    centre_col = float((digit.sum(axis=0) * np.arange(width)).sum()) / total
    middle = (IMAGE_SIZE - 1) / 2
    top, left = math.floor(middle - centre_row + 0.5), math.floor(middle - centre_col + 0.5)
    field = np.zeros((IMAGE_SIZE, IMAGE_SIZE), dtype=np.float32)
    # A lopsided digit (a 7's mass sits high) may reach past the field's edge: clip it there.
    rows = slice(max(top, 0), min(top + height, IMAGE_SIZE))
    cols = slice(max(left, 0), min(left + width, IMAGE_SIZE))
    field[rows, cols] = digit[rows.start - top : rows.stop - top, cols.start - left : cols.stop - left]
    return torch.from_numpy(np.round(field * PIXEL_MAX).astype(np.uint8))
