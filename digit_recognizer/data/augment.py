"""Batched random affine augmentation that runs on the training device.

torchvision's RandomAffine draws one set of parameters per call, so a batch would share one
transform; here every image gets its own rotation, zoom and shift in a single `affine_grid` +
`grid_sample`, with no per-sample Python. The ranges follow Keras' ImageDataGenerator as the
reference kernel used it: rotation in degrees, zoom drawn independently for x and y in
[1 - zoom, 1 + zoom], shifts as a fraction of the image size, bilinear interpolation.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class BatchRandomAffine(nn.Module):
    """Rotate, zoom and shift each image of a (B, C, H, W) float batch independently."""

    def __init__(self, rotation_degrees: float = 10.0, zoom: float = 0.1, shift: float = 0.1) -> None:
        super().__init__()
        if rotation_degrees < 0 or not 0 <= zoom < 1 or shift < 0:
            raise ValueError(f"need rotation_degrees >= 0, 0 <= zoom < 1, shift >= 0; got {rotation_degrees}, {zoom}, {shift}")
        self.rotation_degrees = rotation_degrees
        self.zoom = zoom
        self.shift = shift

    @property
    def is_identity(self) -> bool:
        return self.rotation_degrees == 0 and self.zoom == 0 and self.shift == 0

    def forward(self, images: Tensor) -> Tensor:
        if self.is_identity:
            return images
        n = images.shape[0]

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
        theta = torch.cat([linear, translation], dim=2).to(images.dtype)
        grid = F.affine_grid(theta, list(images.shape), align_corners=False)
        return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)

    def extra_repr(self) -> str:
        return f"rotation_degrees={self.rotation_degrees}, zoom={self.zoom}, shift={self.shift}"
