"""Pasero's learning-rate schedule: linear warmup from `init_lr` to `lr`, then inverse square root decay."""

from __future__ import annotations

import math

import torch
from torch.optim.lr_scheduler import LambdaLR


def inverse_sqrt_factor(step: int, lr: float, warmup: int, init_lr: float = 0.0, min_lr: float = 0.0) -> float:
    """Learning rate at `step` divided by `lr` (LambdaLR multiplies the optimizer's base lr by it).

    Without warmup, Pasero decays linearly from `lr` towards `min_lr`; that case needs `max_steps` and is served by
    the Hugging Face 'linear' schedule instead, so here `warmup` must be positive.
    """
    if step < warmup:
        value = init_lr + step * (lr - init_lr) / warmup
    else:
        value = lr * math.sqrt(warmup / max(step, 1))
    return max(value, min_lr) / lr


def inverse_sqrt_schedule(optimizer: torch.optim.Optimizer, lr: float, warmup: int, init_lr: float = 0.0,
                          min_lr: float = 0.0, last_epoch: int = -1) -> LambdaLR:
    """A `LambdaLR` implementing `inverse_sqrt_factor` (a plain function of the step: resumable from its state)."""
    if warmup <= 0:
        raise ValueError(f"warmup: the inverse_sqrt schedule needs warmup > 0, got {warmup} (use lr_scheduler: linear)")
    if not 0 <= init_lr <= lr:
        raise ValueError(f"init_lr: must be in [0, lr={lr}], got {init_lr}")

    def factor(step: int) -> float:
        return inverse_sqrt_factor(step, lr, warmup, init_lr, min_lr)

    return LambdaLR(optimizer, factor, last_epoch=last_epoch)
