"""The trainer's CPU dropout (`pasero_hf.training.dropout`): right keep probability in every part of a random draw,
unchanged expectation, gradients through the same mask, reproducible from the seed, PyTorch's dropout elsewhere."""

import pytest
import torch
from torch import nn

from pasero_hf.training.dropout import cpu_dropout, fast_cpu_dropout


@pytest.mark.parametrize("p", [0.1, 0.3, 0.5])
def test_keep_probability_and_expectation(p):
    torch.manual_seed(0)
    count = 4 * 250_000
    kept = cpu_dropout(torch.ones(count), p) != 0
    # each 64-bit draw decides four neighbouring elements: each of the four 16-bit parts must be unbiased
    per_part = kept.view(-1, 4).float().mean(0)
    tolerance = 5 * (p * (1 - p) / (count / 4)) ** 0.5
    assert torch.all((per_part - (1 - p)).abs() < tolerance), per_part
    out = cpu_dropout(torch.ones(count), p)
    assert abs(out.mean().item() - 1) < 5 * (p / (1 - p) / count) ** 0.5  # expectation kept
    values = out.unique().tolist()
    assert len(values) == 2 and values[0] == 0.0 and values[1] == pytest.approx(1 / (1 - p), rel=1e-4)


def test_odd_shapes_gradient_and_seed():
    x = torch.randn(7, 5, 3, requires_grad=True)  # 105 elements: not a multiple of four
    torch.manual_seed(3)
    out = cpu_dropout(x, 0.2)
    assert out.shape == x.shape
    kept = out != 0
    assert torch.allclose(out[kept], x[kept] / 0.8, rtol=1e-4)
    out.backward(torch.full_like(out, 2.0))
    assert torch.equal(x.grad != 0, kept)
    assert torch.allclose(x.grad[kept], torch.full_like(x.grad[kept], 2 / 0.8), rtol=1e-4)
    torch.manual_seed(3)
    assert torch.equal(cpu_dropout(x.detach(), 0.2), out.detach())
    assert not torch.equal(cpu_dropout(x.detach(), 0.2), out.detach())  # the generator moved on
    bf16 = cpu_dropout(torch.ones(64, dtype=torch.bfloat16), 0.5)
    assert bf16.dtype is torch.bfloat16 and set(bf16.unique().tolist()) <= {0.0, 2.0}


def test_identity_and_fallbacks():
    x = torch.randn(100)
    assert cpu_dropout(x, 0.3, training=False) is x
    assert cpu_dropout(x, 0.0) is x
    assert torch.equal(cpu_dropout(x, 1.0), torch.zeros_like(x))  # as nn.functional.dropout
    for training in (True, False):  # a bad p is refused in evaluation too, as nn.functional.dropout does
        with pytest.raises(ValueError, match="dropout probability"):
            cpu_dropout(x, 1.5, training=training)


def test_context_patches_dropout_layers_only_inside():
    model = nn.Sequential(nn.Linear(8, 8), nn.Dropout(0.25), nn.Dropout(0.25, inplace=True))
    x = torch.randn(4, 8)
    with fast_cpu_dropout(model):
        assert "forward" in model[1].__dict__ and "forward" not in model[2].__dict__  # in-place: PyTorch's
        torch.manual_seed(1)
        ours = model[1](x)
        torch.manual_seed(1)
        assert torch.equal(model[1](x), ours)
        model.eval()
        assert model[1](x) is x
        model.train()
    assert all("forward" not in module.__dict__ for module in model)
    torch.manual_seed(1)
    assert not torch.equal(model[1](x), ours)  # PyTorch's masks again
    with fast_cpu_dropout(model, enabled=False):
        assert "forward" not in model[1].__dict__
