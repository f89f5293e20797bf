"""Label-smoothed loss, Pasero's schedule, and token normalisation of the trainer's loss (any model)."""

import math

import pytest
import torch
from transformers import M2M100Config, M2M100ForConditionalGeneration, Seq2SeqTrainingArguments

from pasero_hf.training.loss import label_smoothed_nll_sum
from pasero_hf.training.schedules import inverse_sqrt_factor, inverse_sqrt_schedule
from pasero_hf.training.trainer import PaseroSeq2SeqTrainer


def test_label_smoothed_loss_matches_definition():
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 7)
    labels = torch.tensor([[1, 4, -100], [6, 0, 2]])
    eps = 0.1
    loss, nll, count = label_smoothed_nll_sum(logits, labels, eps)
    logp = logits.log_softmax(-1)
    expected_nll = expected = 0.0
    for b in range(2):
        for t in range(3):
            if labels[b, t] == -100:
                continue
            target_logp = logp[b, t, labels[b, t]]
            expected_nll -= target_logp
            expected -= (1 - eps) * target_logp + eps * logp[b, t].mean()
    assert count == 5
    assert torch.allclose(nll, expected_nll) and torch.allclose(loss, expected)


def _composite_loss(logits, labels, eps):
    """The loss written with autograd's own operations (the reference for the hand-written backward)."""
    keep = labels.reshape(-1) != -100
    logp = logits.reshape(-1, logits.shape[-1]).float().log_softmax(-1)
    nll = -logp.gather(1, labels.reshape(-1, 1).clamp(min=0)).squeeze(1)[keep].sum()
    return (1 - eps) * nll - eps * logp.mean(-1)[keep].sum()


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("eps", [0.0, 0.1])
def test_label_smoothed_loss_gradient_matches_autograd(dtype, eps):
    torch.manual_seed(0)
    logits = torch.randn(3, 4, 50, dtype=dtype, requires_grad=True)
    labels = torch.randint(0, 50, (3, 4))
    labels[0, 2:] = -100
    loss, _, _ = label_smoothed_nll_sum(logits, labels, eps)
    (0.7 * loss).backward()
    ours, logits.grad = logits.grad, None
    (0.7 * _composite_loss(logits, labels, eps)).backward()
    assert ours.dtype == dtype
    assert torch.allclose(ours.float(), logits.grad.float(), atol=1e-6 if dtype is torch.float32 else 1e-2)
    assert torch.all(ours[0, 2:] == 0)  # padding positions get no gradient


def test_label_smoothed_loss_refuses_a_second_backward():
    logits = torch.randn(2, 5, requires_grad=True)
    loss, _, _ = label_smoothed_nll_sum(logits, torch.tensor([1, 3]), 0.1)
    loss.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="twice"):
        loss.backward()


def test_inverse_sqrt_schedule_values():
    lr, warmup = 1e-3, 4
    values = [inverse_sqrt_factor(step, lr, warmup) * lr for step in (0, 1, 2, 4, 16, 64)]
    assert values == pytest.approx([0.0, 2.5e-4, 5e-4, 1e-3, 5e-4, 2.5e-4])
    assert inverse_sqrt_factor(10_000, lr, warmup, min_lr=1e-4) * lr == pytest.approx(1e-4)
    assert inverse_sqrt_factor(0, lr, warmup, init_lr=1e-4) * lr == pytest.approx(1e-4)
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)
    schedule = inverse_sqrt_schedule(optimizer, lr=lr, warmup=warmup)
    seen = []
    for _ in range(6):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    assert seen == pytest.approx([0.0, 2.5e-4, 5e-4, 7.5e-4, 1e-3, 1e-3 * math.sqrt(4 / 5)])


def test_inverse_sqrt_rejects_zero_warmup():
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    with pytest.raises(ValueError, match="warmup"):
        inverse_sqrt_schedule(optimizer, lr=1.0, warmup=0)


def _batch(rows: list[list[int]]) -> dict:
    width = max(len(r) for r in rows)
    labels = torch.full((len(rows), width), -100)
    for i, r in enumerate(rows):
        labels[i, : len(r)] = torch.tensor(r)
    input_ids = labels.clamp(min=1)
    return {"input_ids": input_ids, "attention_mask": (labels != -100).long(), "labels": labels,
            "source_lang": "en", "target_lang": "es", "domain": None}


def test_accumulated_micro_batches_give_the_gradient_of_the_whole_batch(tmp_path):
    """Two micro-batches of 8 and 4 tokens = one batch: the loss is normalised by the step's tokens (a mean per
    micro-batch would weight the 4 tokens of the second as much as the 8 of the first).

    Uses M2M100 (the trainer is model-agnostic; its forward takes no language strings, which are filtered out).
    """
    torch.manual_seed(0)
    config = M2M100Config(vocab_size=40, d_model=16, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
                          decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32, dropout=0.0, attention_dropout=0.0,
                          encoder_layerdrop=0.0, decoder_layerdrop=0.0, max_position_embeddings=32)
    model = M2M100ForConditionalGeneration(config)
    args = Seq2SeqTrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to="none", max_steps=1,
                                    gradient_accumulation_steps=2)
    trainer = PaseroSeq2SeqTrainer(model=model, args=args, label_smoothing=0.1)
    # equal lengths, so that padding cannot differ between the two computations; unequal token counts per batch
    first = _batch([[5, 6, 7, 2], [8, 9, 10, 2]])
    second = _batch([[11, 12, 13, 2]])
    model.train()

    num_items = trainer._get_num_items_in_batch([first, second], torch.device("cpu"))
    assert int(num_items) == 12
    for batch in (first, second):
        trainer.compute_loss(model, dict(batch), num_items_in_batch=num_items).backward()
    accumulated = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    model.zero_grad()
    rows = [[5, 6, 7, 2], [8, 9, 10, 2], [11, 12, 13, 2]]
    whole = _batch(rows)
    logits = model(input_ids=whole["input_ids"], attention_mask=whole["attention_mask"],
                   labels=whole["labels"]).logits
    loss, _, count = label_smoothed_nll_sum(logits, whole["labels"], 0.1)
    (loss / count).backward()
    for name, grad in accumulated.items():
        assert torch.allclose(grad, model.get_parameter(name).grad, atol=1e-6), name
