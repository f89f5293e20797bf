"""Label-smoothed cross-entropy summed over target tokens (the trainer normalises it by the global token count)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

IGNORE_INDEX = -100


def label_smoothed_nll_sum(logits: torch.Tensor, labels: torch.Tensor, label_smoothing: float
                           ) -> tuple[torch.Tensor, torch.Tensor, int]:
    """(smoothed loss sum, NLL sum, number of target tokens) over positions whose label is not -100.

    Computed in float32 whatever the logits' dtype: bf16 log-softmax over a large vocabulary loses precision.
    The smoothing mass is spread uniformly over the whole vocabulary, as `torch.nn.functional.cross_entropy`
    (and Pasero) do.
    """
    flat_logits = logits.float().reshape(-1, logits.size(-1))
    flat_labels = labels.reshape(-1)
    loss = F.cross_entropy(flat_logits, flat_labels, ignore_index=IGNORE_INDEX, reduction="sum",
                           label_smoothing=label_smoothing)
    if label_smoothing:
        with torch.no_grad():
            nll = F.cross_entropy(flat_logits, flat_labels, ignore_index=IGNORE_INDEX, reduction="sum")
    else:
        nll = loss.detach()
    return loss, nll, int((flat_labels != IGNORE_INDEX).sum())
