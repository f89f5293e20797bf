"""Label-smoothed cross-entropy summed over target tokens (the trainer normalises it by the global token count)."""

from __future__ import annotations

import torch

IGNORE_INDEX = -100


def label_smoothed_nll_sum(logits: torch.Tensor, labels: torch.Tensor, label_smoothing: float
                           ) -> tuple[torch.Tensor, torch.Tensor, int]:
    """(smoothed loss sum, NLL sum, number of target tokens) over positions whose label is not -100.

    The smoothing mass is spread uniformly over the whole vocabulary, as `torch.nn.functional.cross_entropy`
    (and Pasero) do: loss = (1 - eps) * nll + eps * mean over the vocabulary of -log p. Computed in float32 whatever
    the logits' dtype (bf16 log-softmax over a large vocabulary loses precision), from one log-softmax shared by
    both terms.
    """
    flat_labels = labels.reshape(-1)
    keep = flat_labels != IGNORE_INDEX
    # log-softmax over every position, padding included: cheaper than copying out the non-padding rows
    lprobs = logits.reshape(-1, logits.size(-1)).float().log_softmax(dim=-1)
    target_lprobs = lprobs.gather(1, flat_labels.clamp(min=0).unsqueeze(1)).squeeze(1)
    nll = -target_lprobs.masked_fill(~keep, 0.0).sum()
    if label_smoothing:
        smooth = -lprobs.mean(dim=-1).masked_fill(~keep, 0.0).sum()
        loss = (1.0 - label_smoothing) * nll + label_smoothing * smooth
    else:
        loss = nll
    return loss, nll.detach(), int(keep.sum())
