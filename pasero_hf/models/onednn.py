"""Float32 `nn.Linear` layers through oneDNN on CPU, for decoding and training.

PyTorch multiplies float32 matrices on CPU with MKL, which takes its AVX-512 kernels only on Intel processors;
oneDNN, which PyTorch also ships (and CTranslate2 uses), takes them on any, and multiplies the same matrices about
twice as fast on an AMD Zen 5 core, with float32 arithmetic (benchmarks/RESULTS.md). Elsewhere it does not gain: on an
AMD Zen 3 (AVX2 only) both libraries are about as fast on square products and oneDNN is slower on thin ones such as
LoRA's rank-16 adapters (a LoRA step took 16-24% more CPU time), and on Intel MKL is already fast. So oneDNN is used
on AMD processors with AVX-512, for products that are neither thin nor small. The choice depends only on the CPU and
the shapes, never on timings, so that a resumed run multiplies exactly as the uninterrupted one did.
With gradients, the backward products go through oneDNN too.
"""

from __future__ import annotations

import contextlib
import functools
import platform
from collections.abc import Iterator

import torch
from torch import nn

from pasero_hf.models.forward_override import overridden_forwards

__all__ = ["onednn_available", "onednn_rule_picks", "onednn_linear_layers"]

# Below about a million multiply-adds (e.g. 47 rows x 256 x 64), oneDNN's call overhead (~5 us) makes it slower
# than MKL; above, it is up to 2.4x faster (measured on AMD Zen 5, 1 thread).
_MIN_MULTIPLY_ADDS = 1 << 20
# Products with fewer input or output features than this (LoRA's low-rank adapters) lose through oneDNN
_MIN_FEATURES = 64


def onednn_available() -> bool:
    """Whether this PyTorch build can run float32 linear layers through oneDNN."""
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")


def _linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """`x @ weight.T + bias` through oneDNN (any strides)."""
    return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "none", [], "")


class _OneDNNLinear(torch.autograd.Function):
    """A linear layer whose forward product and both backward products go through oneDNN."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        return _linear(x, weight, bias)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        x, weight = ctx.saved_tensors
        grad_x = grad_weight = grad_bias = None
        if ctx.needs_input_grad[0]:
            grad_x = _linear(grad, weight.t(), None)  # grad @ weight
        rows = grad.reshape(-1, grad.shape[-1])
        if ctx.needs_input_grad[1]:
            grad_weight = _linear(rows.t(), x.reshape(-1, x.shape[-1]).t(), None)  # grad.T @ x
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_bias = rows.sum(0)
        return grad_x, grad_weight, grad_bias


def _cpu_vendor() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("vendor_id"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


@functools.cache
def _cpu_gains_from_onednn() -> bool:
    """AMD with AVX-512: the CPUs whose widest vectors oneDNN uses and MKL does not."""
    return torch.backends.cpu.get_cpu_capability() == "AVX512" and "AMD" in _cpu_vendor()


def onednn_rule_picks(in_features: int, out_features: int) -> bool:
    """Whether the rule of this module (CPU and shape, no measurement) sends a float32 linear layer of this shape
    through oneDNN: on the CPUs and shapes where the benchmarks found it faster than PyTorch's default (MKL).
    Products too small to gain are left out separately (`_MIN_MULTIPLY_ADDS`)."""
    return _cpu_gains_from_onednn() and min(in_features, out_features) >= _MIN_FEATURES


def _onednn_forward(module: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    weight, bias = module.weight, module.bias
    if (
        x.dtype is torch.float32
        and x.device.type == "cpu"
        and type(weight) in (torch.Tensor, nn.Parameter)  # not a DTensor (tensor or fully sharded parallelism)
        and not torch.is_autocast_enabled("cpu")  # mixed precision casts to bfloat16 in F.linear
        and x.numel() * weight.shape[0] >= _MIN_MULTIPLY_ADDS
        and onednn_rule_picks(weight.shape[1], weight.shape[0])
    ):
        if torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in (x, weight, bias)):
            return _OneDNNLinear.apply(x, weight, bias)
        return _linear(x, weight, bias)
    return nn.functional.linear(x, weight, bias)


@contextlib.contextmanager
def onednn_linear_layers(model: nn.Module, enabled: bool = True) -> Iterator[None]:
    """Within the block, the model's float32 CPU `nn.Linear` layers multiply through oneDNN when that is faster.

    Layers whose `forward` was already replaced on the instance are left alone. Without oneDNN (or with
    `enabled=False`) nothing changes.
    """
    usable = enabled and onednn_available()

    def selected(module: nn.Module) -> bool:
        return (usable and type(module) is nn.Linear and module.weight.device.type == "cpu"
                and module.weight.dtype is torch.float32)

    with overridden_forwards(model, selected, _onednn_forward):
        yield
