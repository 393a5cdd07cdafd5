"""Batched random warps (affine, optionally elastic) that run on the training device.

torchvision's RandomAffine and ElasticTransform draw one set of parameters (one displacement field)
per call, so a batch would share one transform; here every image gets its own rotation, zoom, shift
and elastic field in a single `affine_grid` + `grid_sample`, with no per-sample Python and a single
interpolation. The affine ranges follow Keras' ImageDataGenerator as the reference kernel used it:
rotation in degrees, zoom drawn independently for x and y in [1 - zoom, 1 + zoom], shifts as a
fraction of the image size, bilinear interpolation. The elastic distortion is Simard et al.'s
(ICDAR 2003): a field of uniform random pixel displacements in [-1, 1], smoothed by a Gaussian of
width `elastic_sigma` pixels (torchvision's `gaussian_blur`, reflect padding, kernel cut at 3 sigma
or at half the image side) and multiplied by `elastic_alpha`; smoothing shrinks the field, so at
sigma 4 an alpha of 20 moves pixels by about 1.2 pixels on average. MixUp and CutMix, which blend
images and labels across a batch, are torchvision's own (`batch_mixer`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.transforms.v2 import CutMix, MixUp, RandomChoice
from torchvision.transforms.v2.functional import gaussian_blur


class BatchRandomWarp(nn.Module):
    """Rotate, zoom, shift and elastically distort each image of a (B, C, H, W) float batch."""

    def __init__(
        self,
        rotation_degrees: float = 10.0,
        zoom: float = 0.1,
        shift: float = 0.1,
        elastic_alpha: float = 0.0,
        elastic_sigma: float = 4.0,
    ) -> None:
        super().__init__()
        limits = {
            "rotation_degrees": (rotation_degrees, rotation_degrees >= 0, ">= 0"),
            "zoom": (zoom, 0 <= zoom < 1, "in [0, 1)"),
            "shift": (shift, shift >= 0, ">= 0"),
            "elastic_alpha": (elastic_alpha, elastic_alpha >= 0, ">= 0"),
            "elastic_sigma": (elastic_sigma, elastic_sigma > 0, "> 0"),
        }
        for name, (value, ok, rule) in limits.items():
            if not ok:
                raise ValueError(f"{name} must be {rule}, got {value}")
        self.rotation_degrees = rotation_degrees
        self.zoom = zoom
        self.shift = shift
        self.elastic_alpha = elastic_alpha
        self.elastic_sigma = elastic_sigma

    @property
    def is_identity(self) -> bool:
        return self.rotation_degrees == 0 and self.zoom == 0 and self.shift == 0 and self.elastic_alpha == 0

    def forward(self, images: Tensor) -> Tensor:
        if self.is_identity:
            return images
        n, _, height, width = images.shape

        def uniform(*shape: int) -> Tensor:  # in [-1, 1)
            return torch.rand(*shape, device=images.device, dtype=torch.float32) * 2 - 1

        angle = uniform(n) * math.radians(self.rotation_degrees)
        scale = 1 + uniform(n, 2) * self.zoom
        offset = uniform(n, 2) * self.shift * 2  # grid coordinates span 2 per image side
        cos, sin = torch.cos(angle), torch.sin(angle)
        rotation = torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2)
        # Keras composes rotation @ shift @ zoom, mapping output to input coordinates.
        linear = rotation * scale[:, None, :]
        translation = (rotation @ offset[:, :, None])
        theta = torch.cat([linear, translation], dim=2)
        grid = F.affine_grid(theta, [n, 1, height, width], align_corners=False)
        if self.elastic_alpha > 0:
            grid = grid + self.elastic_displacement(n, height, width, images.device)
        return F.grid_sample(images, grid.to(images.dtype), mode="bilinear", padding_mode="zeros", align_corners=False)

    def elastic_displacement(self, n: int, height: int, width: int, device: torch.device) -> Tensor:
        """(n, H, W, 2) smooth random displacements, in grid units (2 per image side), x then y."""
        radius = min(math.ceil(3 * self.elastic_sigma), (min(height, width) - 1) // 2)  # reflect padding < side
        noise = torch.rand(n, 2, height, width, device=device, dtype=torch.float32) * 2 - 1
        field = gaussian_blur(noise, [2 * radius + 1] * 2, [self.elastic_sigma] * 2) * self.elastic_alpha
        pixels_to_grid = torch.tensor([2 / width, 2 / height], device=device)
        return field.permute(0, 2, 3, 1) * pixels_to_grid

    def extra_repr(self) -> str:
        return (
            f"rotation_degrees={self.rotation_degrees}, zoom={self.zoom}, shift={self.shift}, "
            f"elastic_alpha={self.elastic_alpha}, elastic_sigma={self.elastic_sigma}"
        )


def batch_mixer(mixup_alpha: float = 0.0, cutmix_alpha: float = 0.0, num_classes: int = 10) -> nn.Module | None:
    """torchvision's MixUp and/or CutMix for a training batch, or None when both are off.

    As in torchvision's classification reference (`--mixup-alpha`, `--cutmix-alpha`): each batch
    is mixed with itself rolled by one image, with one mixing weight drawn from Beta(alpha, alpha);
    with both on, each batch uses one of the two at random. Labels come back as (B, classes)
    probabilities, which `F.cross_entropy` takes as targets.
    """
    for name, value in (("mixup_alpha", mixup_alpha), ("cutmix_alpha", cutmix_alpha)):
        if value < 0:
            raise ValueError(f"{name} must be >= 0, got {value}")
    mixers = [
        kind(alpha=alpha, num_classes=num_classes)
        for kind, alpha in ((MixUp, mixup_alpha), (CutMix, cutmix_alpha))
        if alpha > 0
    ]
    if not mixers:
        return None
    return mixers[0] if len(mixers) == 1 else RandomChoice(mixers)
