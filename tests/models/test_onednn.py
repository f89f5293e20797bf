"""oneDNN linear layers on CPU: PyTorch's results and gradients, only inside the block, not under autocast, and
only for the layer shapes that oneDNN multiplies clearly faster on this CPU."""

import pytest
import torch
from torch import nn

from pasero_hf.models import onednn
from pasero_hf.models.onednn import onednn_available, onednn_linear_layers


def test_the_pinned_pytorch_build_has_onednn():
    """The CPU wheel that `make install` pins ships oneDNN; on a build without it the tests below would be void."""
    assert onednn_available()


@pytest.fixture
def onednn_faster(monkeypatch):
    """The library choice as on a CPU where oneDNN wins (AMD Zen 5): the tests below check the oneDNN path itself."""
    monkeypatch.setattr(onednn, "onednn_rule_picks", lambda *args, **kwargs: True)


def test_linear_layers_use_onednn_only_inside_the_block(onednn_faster):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(256, 1024), nn.ReLU(), nn.Linear(1024, 256, bias=False)).eval()
    x = torch.randn(64, 256)
    with torch.inference_mode():
        expected = model(x)
        with onednn_linear_layers(model):
            assert all("forward" in layer.__dict__ for layer in (model[0], model[2]))
            got = model(x)
    assert all("forward" not in layer.__dict__ for layer in model)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    with torch.inference_mode():  # the products went through oneDNN
        hidden = torch.ops.mkldnn._linear_pointwise(x, model[0].weight, model[0].bias, "none", [], "").relu()
        assert torch.equal(got, torch.ops.mkldnn._linear_pointwise(hidden, model[2].weight, None, "none", [], ""))


def test_only_large_products_go_through_onednn(monkeypatch, onednn_faster):
    calls = []

    def recording_linear(x, weight, bias):
        calls.append(tuple(x.shape))
        return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "none", [], "")

    monkeypatch.setattr(onednn, "_linear", recording_linear)
    torch.manual_seed(0)
    layer = nn.Linear(64, 64)
    small, large = torch.randn(4, 64), torch.randn(512, 64)
    with onednn_linear_layers(layer), torch.no_grad():
        assert torch.equal(layer(small), nn.functional.linear(small, layer.weight, layer.bias))
        assert calls == []  # 4 x 64 x 64 multiply-adds: oneDNN's call overhead would cost more
        layer(large)
    assert calls == [(512, 64)]


def test_gradients_through_onednn_equal_pytorch_gradients(onednn_faster):
    """Training: the forward and both backward products go through oneDNN, with PyTorch's gradients."""
    torch.manual_seed(0)
    layer = nn.Linear(256, 512)
    x = torch.randn(3, 700, 256, requires_grad=True)
    target = torch.randn(3, 700, 512)

    def gradients():
        loss = ((layer(x) - target) ** 2).mean()
        loss.backward()
        grads = [x.grad.clone(), layer.weight.grad.clone(), layer.bias.grad.clone()]
        x.grad = layer.weight.grad = layer.bias.grad = None
        return loss.detach(), grads

    expected_loss, expected = gradients()
    with onednn_linear_layers(layer):
        loss, got = gradients()
        with torch.no_grad():  # the forward product went through oneDNN
            ours = torch.ops.mkldnn._linear_pointwise(x, layer.weight, layer.bias, "none", [], "")
            assert torch.equal(layer(x), ours)
    torch.testing.assert_close(loss, expected_loss, rtol=1e-5, atol=1e-6)
    for ours_grad, theirs in zip(got, expected):
        torch.testing.assert_close(ours_grad, theirs, rtol=1e-4, atol=1e-6)


def test_mixed_precision_keeps_pytorch_path():
    layer = nn.Linear(256, 1024)
    x = torch.randn(512, 256)
    with onednn_linear_layers(layer), torch.autocast("cpu", dtype=torch.bfloat16):
        assert layer(x).dtype is torch.bfloat16


def test_disabled_or_already_patched_layers_are_left_alone():
    layer = nn.Linear(8, 8)
    with onednn_linear_layers(layer, enabled=False):
        assert "forward" not in layer.__dict__
    custom = layer.forward
    layer.forward = custom
    with onednn_linear_layers(layer):
        assert layer.__dict__["forward"] is custom
    assert layer.__dict__["forward"] is custom


@pytest.mark.parametrize(
    "capability, vendor, wins",
    [("AVX512", "AuthenticAMD", True), ("AVX2", "AuthenticAMD", False), ("AVX512", "GenuineIntel", False)],
)
def test_onednn_is_chosen_by_cpu_and_shape_alone(monkeypatch, capability, vendor, wins):
    """oneDNN only where MKL leaves AVX-512 unused (AMD), never for thin LoRA-like products; no timing enters the
    choice, so a resumed run multiplies exactly as the uninterrupted one did."""
    monkeypatch.setattr(onednn, "_cpu_gains_from_onednn", onednn._cpu_gains_from_onednn.__wrapped__)
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: capability)
    monkeypatch.setattr(onednn, "_cpu_vendor", lambda: vendor)
    assert onednn.onednn_rule_picks(256, 1024) is wins
    assert onednn.onednn_rule_picks(256, 256) is wins
    assert not onednn.onednn_rule_picks(256, 16)  # LoRA's rank-16 products
    assert not onednn.onednn_rule_picks(16, 256)


def test_layers_the_rule_rejects_keep_pytorch(monkeypatch):
    calls = []
    monkeypatch.setattr(onednn, "_linear", lambda *args: calls.append(args))
    monkeypatch.setattr(onednn, "onednn_rule_picks", lambda *args, **kwargs: False)
    layer = nn.Linear(256, 256)
    x = torch.randn(512, 256, requires_grad=True)
    with onednn_linear_layers(layer):
        layer(x).sum().backward()
        with torch.no_grad():
            layer(x)
    assert calls == []
