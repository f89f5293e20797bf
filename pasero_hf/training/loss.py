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
    both terms, on the non-padding positions only.
    """
    flat_labels = labels.reshape(-1)
    keep = flat_labels != IGNORE_INDEX
    targets = flat_labels[keep]
    lprobs = logits.reshape(-1, logits.size(-1))[keep].float().log_softmax(dim=-1)
    nll = -lprobs.gather(1, targets.unsqueeze(1)).sum()
    if label_smoothing:
        loss = (1.0 - label_smoothing) * nll - label_smoothing * lprobs.mean(dim=-1).sum()
    else:
        loss = nll
    return loss, nll.detach(), int(targets.numel())
