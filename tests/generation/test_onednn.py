"""oneDNN linear layers for CPU inference: same results as PyTorch's, only inside the block, never for gradients."""

import pytest
import torch
from torch import nn

from pasero_hf.generation.onednn import onednn_available, onednn_linear_layers

pytestmark = pytest.mark.skipif(not onednn_available(), reason="this PyTorch build has no oneDNN")


def test_linear_layers_use_onednn_only_inside_the_block():
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


def test_small_products_and_gradients_keep_pytorch_path():
    torch.manual_seed(0)
    layer = nn.Linear(64, 64)
    small = torch.randn(4, 64)
    large = torch.randn(512, 64, requires_grad=True)
    with onednn_linear_layers(layer):
        with torch.no_grad():
            assert torch.equal(layer(small), nn.functional.linear(small, layer.weight, layer.bias))
        out = layer(large)  # training-style call: needs gradients
        out.sum().backward()
    assert large.grad is not None and layer.weight.grad is not None
    assert torch.equal(out, nn.functional.linear(large, layer.weight, layer.bias))


def test_disabled_or_already_patched_layers_are_left_alone():
    layer = nn.Linear(8, 8)
    with onednn_linear_layers(layer, enabled=False):
        assert "forward" not in layer.__dict__
    custom = layer.forward
    layer.forward = custom
    with onednn_linear_layers(layer):
        assert layer.__dict__["forward"] is custom
    assert layer.__dict__["forward"] is custom


def test_decoding_outputs_do_not_depend_on_it(pasero_generator, bible_dir):
    lines = (bible_dir / "test.en").read_text(encoding="utf-8").splitlines()[:40]
    outputs = {}
    for onednn in (True, False):
        pasero_generator.onednn = onednn
        outputs[onednn] = pasero_generator.decode(*lines, source_lang="en", target_lang="es", beam_size=5,
                                                  return_scores=True)
    pasero_generator.onednn = True
    for with_onednn, without in zip(outputs[True], outputs[False]):
        assert with_onednn[0]["tokens"] == without[0]["tokens"]
        assert with_onednn[0]["score"] == pytest.approx(without[0]["score"], abs=1e-3)
