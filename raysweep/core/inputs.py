"""Model inputs, in one place: uint8 images resized to the model's input size (on the device they
are used on) and normalised the release's way (mean = std = 0.5)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def normalize(x: torch.Tensor) -> torch.Tensor:
    """Model input from [0, 1] images: the release's normalisation, mean = std = 0.5."""
    return (x - 0.5) / 0.5


def model_input(images: np.ndarray, size: int, device) -> torch.Tensor:
    """uint8 ``(N, H, W, 3)`` images as the model's normalised input on ``device``: the uint8 pixels
    go to the device (1 byte per value) and are resized there."""
    return normalize(resize_batch(images, size, device))


def resize_batch(images: np.ndarray, size: int, device=None):
    """uint8 ``(N, H, W, 3)`` -> float32 torch tensor ``(N, 3, size, size)`` in [0, 1] on ``device``
    (default: the CPU); bicubic, antialiased when downscaling, computed on ``device``. Call it per
    mini-batch: the result is 4 bytes per value."""
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"resize_batch expects uint8 (N, H, W, 3) images, got {images.dtype} {images.shape}")
    if int(size) < 1:
        raise ValueError(f"resize_batch size={size!r}; expected a positive int")
    size = int(size)
    x = torch.from_numpy(np.ascontiguousarray(images))
    if device is not None:
        x = x.to(device, non_blocking=True)
    x = x.permute(0, 3, 1, 2).to(torch.float32).div_(255.0)
    n, _, h, w = x.shape
    if (h, w) == (size, size):
        return x.contiguous()
    if n == 0:
        return x.new_zeros((0, 3, size, size))
    x = F.interpolate(x, size=(size, size), mode="bicubic", align_corners=False, antialias=size < h or size < w)
    return x.clamp_(0.0, 1.0).contiguous()
