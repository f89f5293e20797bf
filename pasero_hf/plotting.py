"""Attention heatmaps: which source tokens each output token looked at (cross-attention from `return_layers`)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pasero_hf.tokenization.file_utils import atomic_path


def heatmap(
    src_tokens: Sequence[str],
    tgt_tokens: Sequence[str],
    attention,
    path: str | os.PathLike | None = None,
    *,
    head: int | None = None,
    title: str | None = None,
):
    """Draw `attention` as a heatmap with source tokens on top and output tokens on the left.

    Args:
        src_tokens: source tokens (columns), e.g. `hyp["src_tokens"]`.
        tgt_tokens: output tokens (rows), e.g. `hyp["tokens"]`.
        attention: array of shape (len(tgt_tokens), len(src_tokens)), or (len(tgt_tokens), heads, len(src_tokens))
            as `TextGenerator` returns `dec_N_cross_attn`: averaged over heads unless `head` picks one.
        path: where to save the figure (PNG, or any format matplotlib infers from the extension), written atomically.
        head: attention head to draw (default: the average of all heads).
        title: optional figure title.

    Returns:
        the matplotlib `Figure` (not shown: call `.savefig` or display it in a notebook).
    """
    from matplotlib.figure import Figure

    weights = np.asarray(attention, dtype=np.float32)
    if weights.ndim == 3:
        weights = weights.mean(axis=1) if head is None else weights[:, head]
    elif head is not None:
        raise ValueError("head is only valid for an attention array with a heads dimension (tgt, heads, src)")
    if weights.ndim != 2 or weights.shape != (len(tgt_tokens), len(src_tokens)):
        raise ValueError(
            f"attention has shape {tuple(np.asarray(attention).shape)}, expected ({len(tgt_tokens)}, "
            f"{len(src_tokens)}) or ({len(tgt_tokens)}, heads, {len(src_tokens)}) for these tokens"
        )

    def labels(tokens: Sequence[str]) -> list[str]:
        return [token.replace("</s>", "EOS") for token in tokens]

    width = max(4.0, 0.32 * len(src_tokens) + 1.5)
    height = max(3.0, 0.32 * len(tgt_tokens) + 1.5)
    figure = Figure(figsize=(width, height), dpi=100)
    axes = figure.add_subplot()
    image = axes.imshow(weights * 100, cmap="Reds", vmin=0, vmax=100, aspect="auto")
    axes.set_xticks(np.arange(len(src_tokens)), labels(src_tokens), rotation=90, fontsize=9)
    axes.set_yticks(np.arange(len(tgt_tokens)), labels(tgt_tokens), fontsize=9)
    axes.xaxis.tick_top()
    axes.tick_params(axis="both", which="both", length=0)
    figure.colorbar(image, ax=axes, label="attention (%)", fraction=0.04)
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    if path is not None:
        _save_atomically(figure, Path(path))
    return figure


def _save_atomically(figure, path: Path) -> None:
    suffix = path.suffix or ".png"
    with atomic_path(path, suffix=suffix) as tmp:
        figure.savefig(tmp, format=suffix.lstrip("."))
