"""Float32 `nn.Linear` layers through oneDNN on CPU, for decoding and training.

PyTorch multiplies float32 matrices on CPU with MKL, which does not use AVX-512 on AMD processors; oneDNN, which
PyTorch also ships (and CTranslate2 uses), multiplies the same matrices about twice as fast on an AMD Zen 5 core, with
float32 arithmetic (benchmarks/RESULTS.md). Elsewhere it may not gain: on an AMD Zen 3 (AVX2 only) both libraries are
about as fast on square products, and oneDNN is slower on thin ones such as LoRA's rank-16 adapters. So each layer
shape is timed once per process with both libraries (its forward product, plus the backward products it will need
when training), and oneDNN is used where it was clearly faster; below a size where its call overhead dominates,
never.
With gradients, the backward products go through oneDNN too.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator

import torch
from torch import nn

__all__ = ["onednn_available", "onednn_is_faster", "onednn_linear_layers"]

# Below about a million multiply-adds (e.g. 47 rows x 256 x 64), oneDNN's call overhead (~5 us) makes it slower
# than MKL; above, it is up to 2.4x faster (measured on AMD Zen 5, 1 thread).
_MIN_MULTIPLY_ADDS = 1 << 20
# The products timed to choose a library for a layer shape have about this many multiply-adds (a batch of a few
# hundred tokens for most layers), between these numbers of rows
_CALIBRATION_MULTIPLY_ADDS = 1 << 25
_CALIBRATION_ROWS = (64, 512)
# (in_features, out_features, product, torch threads) -> (seconds with MKL, seconds with oneDNN)
_PRODUCT_SECONDS: dict[tuple[int, int, str, int], tuple[float, float]] = {}
# oneDNN is used where it took at most this fraction of MKL's time: products timed apart do not show all of its costs
# in a model (on an AMD Zen 3, a LoRA step with every layer whose timed products were faster through oneDNN still
# took 9% more CPU time than without oneDNN), and a near tie is not worth its memory
_REQUIRED_SPEEDUP = 0.8
_PRODUCTS = {"inference": ("forward",), "frozen": ("forward", "grad_input"),
             "train": ("forward", "grad_input", "grad_weight")}


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


def _fastest_seconds(fn: Callable[[], torch.Tensor], repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def _time_product(in_features: int, out_features: int, product: str) -> tuple[float, float]:
    """(MKL seconds, oneDNN seconds) of one product of a linear layer of this shape, best of 3, on random data."""
    rows = _CALIBRATION_MULTIPLY_ADDS // (in_features * out_features)
    rows = min(max(rows, _CALIBRATION_ROWS[0]), _CALIBRATION_ROWS[1])
    x = torch.randn(rows, in_features)
    weight = torch.randn(out_features, in_features)
    grad = torch.randn(rows, out_features)
    mkl, onednn = {
        "forward": (lambda: nn.functional.linear(x, weight), lambda: _linear(x, weight, None)),
        "grad_input": (lambda: grad @ weight, lambda: _linear(grad, weight.t(), None)),
        "grad_weight": (lambda: grad.t() @ x, lambda: _linear(grad.t(), x.t(), None)),
    }[product]
    mkl(), onednn()  # first calls: kernel selection, page faults
    return _fastest_seconds(mkl), _fastest_seconds(onednn)


def onednn_is_faster(in_features: int, out_features: int, mode: str = "inference") -> bool:
    """Whether oneDNN computes a float32 linear layer of this shape clearly faster than PyTorch's default (MKL) here.

    `mode`: "inference" (the forward product), "frozen" (forward and input-gradient products: a frozen weight, as
    under LoRA) or "train" (also the weight-gradient product). Each product is timed once per shape and thread
    count, then remembered.
    """
    default = onednn = 0.0
    for product in _PRODUCTS[mode]:
        key = (in_features, out_features, product, torch.get_num_threads())
        if key not in _PRODUCT_SECONDS:
            with torch.no_grad():
                _PRODUCT_SECONDS[key] = _time_product(in_features, out_features, product)
        default += _PRODUCT_SECONDS[key][0]
        onednn += _PRODUCT_SECONDS[key][1]
    return onednn <= _REQUIRED_SPEEDUP * default


def _onednn_forward(module: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    weight, bias = module.weight, module.bias
    if (
        x.dtype is torch.float32
        and x.device.type == "cpu"
        and type(weight) in (torch.Tensor, nn.Parameter)  # not a DTensor (tensor or fully sharded parallelism)
        and not torch.is_autocast_enabled("cpu")  # mixed precision casts to bfloat16 in F.linear
        and x.numel() * weight.shape[0] >= _MIN_MULTIPLY_ADDS
    ):
        if torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in (x, weight, bias)):
            if onednn_is_faster(weight.shape[1], weight.shape[0], "train" if weight.requires_grad else "frozen"):
                return _OneDNNLinear.apply(x, weight, bias)
        elif onednn_is_faster(weight.shape[1], weight.shape[0]):
            return _linear(x, weight, bias)
    return nn.functional.linear(x, weight, bias)


@contextlib.contextmanager
def onednn_linear_layers(model: nn.Module, enabled: bool = True) -> Iterator[None]:
    """Within the block, the model's float32 CPU `nn.Linear` layers multiply through oneDNN when that is faster.

    Layers whose `forward` was already replaced on the instance are left alone. Without oneDNN (or with
    `enabled=False`) nothing changes.
    """
    patched: list[nn.Linear] = []
    if enabled and onednn_available():
        for module in model.modules():
            if (
                type(module) is nn.Linear
                and "forward" not in module.__dict__
                and module.weight.device.type == "cpu"
                and module.weight.dtype is torch.float32
            ):
                module.forward = _onednn_forward.__get__(module)
                patched.append(module)
    try:
        yield
    finally:
        for module in patched:
            del module.forward
