"""Language-specific expert pruning of NLLB-MoE models (Koishekenov, Bérard & Nikoulina, ACL 2023).

Experts are scored per sparse layer from gate statistics (`expert_stats`): encoder experts by the source language,
decoder experts by the target language. A language pair without its own statistics falls back, as Pasero does, to
the encoder statistics of every pair with the same source language and the decoder statistics of every pair with
the same target language. Then either a fixed number of experts is kept per layer (`select_top_k`), or every expert
whose score reaches a global threshold, with a minimum per layer (`select_by_threshold`). `prune_model` slices the
router rows and the experts in place and updates the per-layer expert counts of the config.

Metrics (higher = kept first):
- `importance`: top-1 activity weighted by gate confidence, `top1 * conf1` (the paper's choice);
- `activity`: share of tokens routed to the expert as first choice (`top1`);
- `load`: share of tokens routed to the expert at all (`top1 + top2`): experts with zero load are never used, so
  pruning them leaves outputs unchanged;
- `mean`: mean gate probability;
- `rank`: mean rank, negated.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from .configuration_pasero_nllb_moe import PaseroNllbMoeConfig
from .expert_stats import SIDES, check_stats_match_model, lang_pair_key, sparse_layers

METRICS = ("importance", "activity", "load", "mean", "rank")


@dataclass
class ExpertSelection:
    """Experts to keep: `{"encoder": {layer_id: [expert ids]}, "decoder": {...}}` (ids in increasing order)."""

    experts: dict[str, dict[int, list[int]]]

    def counts(self, side: str) -> dict[int, int]:
        return {layer_id: len(ids) for layer_id, ids in self.experts[side].items()}

    def to_dict(self) -> dict:
        return {side: {str(layer_id): ids for layer_id, ids in layers.items()} for side, layers in self.experts.items()}


def _merge_blocks(blocks: list[dict]) -> dict[str, dict[str, torch.Tensor]]:
    """Token-weighted merge of several pairs' statistics for one side (`conf*` weighted by their top-k counts)."""
    merged: dict[str, dict[str, torch.Tensor]] = {}
    layer_ids = blocks[0]["layers"].keys()
    for layer_id in layer_ids:
        tokens = torch.tensor([float(block["num_tokens"]) for block in blocks], dtype=torch.float64)[:, None]
        stats = {
            name: torch.tensor([block["layers"][layer_id][name] for block in blocks], dtype=torch.float64)
            for name in ("mean", "rank", "top1", "top2", "conf1", "conf2")
        }
        total = tokens.sum().clamp(min=1)
        layer = {name: (stats[name] * tokens).sum(dim=0) / total for name in ("mean", "rank", "top1", "top2")}
        for rank in ("1", "2"):
            counts = stats[f"top{rank}"] * tokens
            layer[f"conf{rank}"] = (stats[f"conf{rank}"] * counts).sum(dim=0) / counts.sum(dim=0).clamp(min=1e-12)
        merged[layer_id] = layer
    return merged


def _metric(layer_stats: dict[str, torch.Tensor], metric: str) -> torch.Tensor:
    if metric == "importance":
        return layer_stats["top1"] * layer_stats["conf1"]
    if metric == "activity":
        return layer_stats["top1"]
    if metric == "load":
        return layer_stats["top1"] + layer_stats["top2"]
    if metric == "mean":
        return layer_stats["mean"]
    if metric == "rank":
        return -layer_stats["rank"]
    raise ValueError(f"--metric: unknown metric {metric!r}, expected one of {', '.join(METRICS)}")


def _side_blocks(stats: dict, side: str, source_lang: str, target_lang: str, path: str) -> list[dict]:
    """Statistics blocks that describe `side` for this pair: its own, or Pasero's per-language fallback."""
    pairs = stats["pairs"]
    key = lang_pair_key(source_lang, target_lang)
    if key in pairs:
        return [pairs[key][side]]
    lang, position = (source_lang, 0) if side == "encoder" else (target_lang, 1)
    blocks = [entry[side] for pair, entry in sorted(pairs.items()) if pair.split("-")[position] == lang]
    if not blocks:
        role = "source" if side == "encoder" else "target"
        available = sorted({pair.split("-")[position] for pair in pairs})
        raise ValueError(
            f"{path}: no statistics for {key} and none with {role} language {lang} to fall back on for the {side} "
            f"(it has {role} languages: {', '.join(available) or 'none'})"
        )
    return blocks


def expert_scores(
    stats: dict,
    lang_pairs: Sequence[tuple[str, str]],
    metric: str = "importance",
    path: str = "<stats>",
) -> dict[str, dict[int, torch.Tensor]]:
    """Score of every expert of every sparse layer, `{side: {layer_id: [num_experts]}}`, averaged over the
    requested language pairs (each pair counts equally)."""
    if metric not in METRICS:
        raise ValueError(f"--metric: unknown metric {metric!r}, expected one of {', '.join(METRICS)}")
    if not lang_pairs:
        raise ValueError("no language pair to prune for")
    scores: dict[str, dict[int, torch.Tensor]] = {}
    for side in SIDES:
        per_pair = []
        for source_lang, target_lang in lang_pairs:
            merged = _merge_blocks(_side_blocks(stats, side, source_lang, target_lang, path))
            per_pair.append({int(layer_id): _metric(layer, metric) for layer_id, layer in merged.items()})
        scores[side] = {
            layer_id: torch.stack([pair_scores[layer_id] for pair_scores in per_pair]).mean(dim=0)
            for layer_id in per_pair[0]
        }
    return scores


def _top_ids(scores: torch.Tensor, k: int) -> list[int]:
    # stable sort: ties keep the lower expert id, so selections are reproducible
    order = torch.sort(-scores, stable=True).indices
    return sorted(order[:k].tolist())


def select_top_k(scores: dict[str, dict[int, torch.Tensor]], keep: dict[str, int]) -> ExpertSelection:
    """Keep the `keep[side]` best experts of every sparse layer of that side."""
    experts = {}
    for side in SIDES:
        k = keep[side]
        if k < 2:
            raise ValueError(f"--keep-{side}: must be at least 2 (top-2 routing needs two experts per layer), got {k}")
        experts[side] = {}
        for layer_id, layer_scores in scores[side].items():
            if k > layer_scores.numel():
                raise ValueError(
                    f"--keep-{side}: {k} experts requested but {side} layer {layer_id} has only {layer_scores.numel()}"
                )
            experts[side][layer_id] = _top_ids(layer_scores, k)
    return ExpertSelection(experts)


def select_by_threshold(
    scores: dict[str, dict[int, torch.Tensor]], threshold: float, min_per_layer: int = 2
) -> ExpertSelection:
    """Keep, across all layers, every expert whose score is at least `threshold`, and at least `min_per_layer` (the
    best ones) in each sparse layer."""
    if min_per_layer < 2:
        raise ValueError(f"--min-experts-per-layer: must be at least 2 (top-2 routing), got {min_per_layer}")
    experts = {}
    for side in SIDES:
        experts[side] = {}
        for layer_id, layer_scores in scores[side].items():
            if min_per_layer > layer_scores.numel():
                raise ValueError(
                    f"--min-experts-per-layer: {min_per_layer} but {side} layer {layer_id} has only "
                    f"{layer_scores.numel()} experts"
                )
            k = max(int((layer_scores >= threshold).sum()), min_per_layer)
            experts[side][layer_id] = _top_ids(layer_scores, k)
    return ExpertSelection(experts)


def _slice_linear_rows(linear: nn.Linear, rows: list[int]) -> nn.Linear:
    index = torch.tensor(rows, dtype=torch.long, device=linear.weight.device)
    sliced = nn.Linear(linear.in_features, len(rows), bias=linear.bias is not None)
    sliced.to(device=linear.weight.device, dtype=linear.weight.dtype)
    with torch.no_grad():
        sliced.weight.copy_(linear.weight.index_select(0, index))
        if linear.bias is not None:
            sliced.bias.copy_(linear.bias.index_select(0, index))
    return sliced


def prune_model(model: nn.Module, selection: ExpertSelection) -> None:
    """Keep only the selected experts, in place: router rows and expert modules are sliced (kept experts are
    renumbered `expert_0..expert_{k-1}` in increasing original id), and the config's per-layer counts updated."""
    layers = sparse_layers(model)
    missing = sorted(set(layers) - {(side, layer_id) for side in SIDES for layer_id in selection.experts[side]})
    if missing:
        raise ValueError(f"the selection has no experts for sparse layers {missing}")
    config: PaseroNllbMoeConfig = model.config
    for (side, layer_id), sparse_block in layers.items():
        ids = selection.experts[side][layer_id]
        if len(ids) < 2 or len(set(ids)) != len(ids) or not all(0 <= i < sparse_block.num_experts for i in ids):
            raise ValueError(
                f"{side} layer {layer_id}: invalid expert ids {ids} (need at least 2 distinct ids below "
                f"{sparse_block.num_experts})"
            )
        sparse_block.router.classifier = _slice_linear_rows(sparse_block.router.classifier, ids)
        sparse_block.router.num_experts = len(ids)
        sparse_block.experts = nn.ModuleDict(
            {f"expert_{new_id}": sparse_block.experts[f"expert_{old_id}"] for new_id, old_id in enumerate(ids)}
        )
    for side in SIDES:
        counts = config.experts_per_layer(side)
        for layer_id, ids in selection.experts[side].items():
            counts[layer_id] = len(ids)
        setattr(config, f"{side}_experts_per_layer", counts)


def select_experts(
    model: nn.Module,
    stats: dict,
    lang_pairs: Sequence[tuple[str, str]],
    metric: str = "importance",
    keep_encoder: int | None = None,
    keep_decoder: int | None = None,
    threshold: float | None = None,
    min_per_layer: int = 2,
    stats_path: str = "<stats>",
) -> ExpertSelection:
    """Check that `stats` describe `model`, score the experts for `lang_pairs` and select them, either per layer
    (`keep_encoder` and `keep_decoder`) or by global `threshold` (with `min_per_layer`)."""
    check_stats_match_model(stats, model.config, stats_path)
    scores = expert_scores(stats, lang_pairs, metric, stats_path)
    if threshold is not None:
        if keep_encoder is not None or keep_decoder is not None:
            raise ValueError("--threshold cannot be combined with --keep-encoder/--keep-decoder")
        return select_by_threshold(scores, threshold, min_per_layer)
    if keep_encoder is None or keep_decoder is None:
        raise ValueError("give both --keep-encoder and --keep-decoder, or --threshold")
    return select_top_k(scores, {"encoder": keep_encoder, "decoder": keep_decoder})


__all__ = [
    "METRICS",
    "ExpertSelection",
    "expert_scores",
    "prune_model",
    "select_by_threshold",
    "select_experts",
    "select_top_k",
]
