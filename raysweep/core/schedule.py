"""The learning-rate schedule both stages use (the release's: rates scaled by the global batch,
linear warm-up, cosine decay) and the randomness of one step of one worker."""

from __future__ import annotations

import math

import numpy as np
import torch


def scaled(value: float, global_batch: int) -> float:
    """The release scales every learning rate by total_batch / 512."""
    return value * global_batch / 512.0


def cosine_lr(step: int, total: int, warmup: int, peak: float, start: float, floor: float) -> float:
    """Linear warm-up from ``start`` to ``peak`` over ``warmup`` steps, then cosine to ``floor``."""
    if step < warmup:
        return start + (peak - start) * step / warmup
    span = max(1, total - warmup)
    return floor + 0.5 * (peak - floor) * (1.0 + math.cos(math.pi * min(1.0, (step - warmup) / span)))


def step_generator(seed: int, rank: int, step: int, device: torch.device) -> torch.Generator:
    """The randomness of one step on one worker: a resumed run draws exactly what it would have."""
    g = torch.Generator(device=device)
    g.manual_seed(int(np.random.SeedSequence([seed, rank, step]).generate_state(1, np.uint64)[0]) & (2**63 - 1))
    return g
