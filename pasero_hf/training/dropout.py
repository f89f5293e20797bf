"""Dropout on CPU from fewer random draws, for training.

PyTorch's CPU dropout draws one Mersenne Twister number per element (`bernoulli_`, ~8 ns each, on one thread whatever
the thread count): in a training step of the 7.4M-parameter Transformer at 2,048 tokens it took 7% of the step on two
threads (benchmarks/RESULTS.md), as much in the original Pasero. Here each 64-bit draw (two of the generator's)
decides four elements, 16 random bits each: an element is kept when its 16 bits, read as a signed number, are at or
above `round(p * 2**16) - 2**15` (a keep probability of exactly `1 - round(p * 2**16) / 2**16`: p is rounded to
1/65,536), and scaled by the inverse of that probability, so the expectation is unchanged. The mask is kept as
booleans for the backward pass (a quarter of the float mask PyTorch keeps). Other devices, dtypes and in-place
dropout are left to PyTorch. Masks come from PyTorch's default CPU generator, so `torch.manual_seed` and saved RNG
states reproduce them (exact resume, activation checkpointing); they are not the masks `nn.functional.dropout` would
draw from the same seed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

from pasero_hf.models.forward_override import overridden_forwards

__all__ = ["cpu_dropout", "fast_cpu_dropout"]

_LEVELS = 1 << 16


def _keep_mask(shape: torch.Size, p: float) -> tuple[torch.Tensor, float]:
    """(booleans of `shape`, True where kept; the factor that keeps the expectation)."""
    count = shape.numel()
    # the whole int64 range: all 64 bits uniform, so each 16-bit part is uniform on [-32768, 32767]
    parts = torch.empty(-(-count // 4), dtype=torch.int64).random_(-(1 << 63), None).view(torch.int16)[:count]
    threshold = round(p * _LEVELS)
    return (parts >= threshold - _LEVELS // 2).view(shape), _LEVELS / (_LEVELS - threshold)


class _Dropout(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, p: float) -> torch.Tensor:
        keep, scale = _keep_mask(x.shape, p)
        ctx.save_for_backward(keep)
        ctx.scale = scale
        return torch.where(keep, x, 0).mul_(scale)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (keep,) = ctx.saved_tensors
        return torch.where(keep, grad, 0).mul_(ctx.scale), None


def cpu_dropout(x: torch.Tensor, p: float, training: bool = True) -> torch.Tensor:
    """`nn.functional.dropout(x, p, training)`, with the masks drawn as above for float CPU tensors."""
    if not training or x.device.type != "cpu" or not x.is_floating_point() or not 0.0 < p < 1.0:
        return nn.functional.dropout(x, p, training)  # also its identity, its p = 1 and its error for a bad p
    return _Dropout.apply(x, p)


def _forward(module: nn.Dropout, x: torch.Tensor) -> torch.Tensor:
    return cpu_dropout(x, module.p, module.training)


@contextlib.contextmanager
def fast_cpu_dropout(model: nn.Module, enabled: bool = True) -> Iterator[None]:
    """Within the block, the model's `nn.Dropout` layers (not in-place ones) draw their CPU masks as above.

    Layers whose `forward` was already replaced on the instance are left alone, and so is dropout that a model calls
    as a function (`nn.functional.dropout`)."""
    def selected(module: nn.Module) -> bool:
        return enabled and type(module) is nn.Dropout and not module.inplace

    with overridden_forwards(model, selected, _forward):
        yield
