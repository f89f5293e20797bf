"""Per-language gate statistics of an NLLB-MoE model, gathered with forward hooks on its routers.

For each sparse layer and expert, over the non-padding tokens of one language pair (encoder layers see the source
side, decoder layers the target side), the statistics Pasero gathers:

- `mean`: mean gate probability;
- `rank`: mean rank of the expert (1 = highest gate);
- `top1` / `top2`: share of tokens for which the expert is ranked first / second;
- `conf1` / `conf2`: mean gate probability when ranked first / second (0 if never).

Saved as JSON (`save_stats`)::

    {"format": "pasero-hf-moe-stats/1",
     "model": {"encoder_experts_per_layer": [...], "decoder_experts_per_layer": [...], "d_model": D},
     "pairs": {"eng_Latn-spa_Latn": {"encoder": {"num_tokens": N, "layers": {"3": {"mean": [...], ...}}},
                                     "decoder": {...}}}}
"""

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
from torch import nn

from .configuration_pasero_nllb_moe import PaseroNllbMoeConfig
from .modeling_pasero_nllb_moe import PaseroNllbMoeSparseMLP

STATS_FORMAT = "pasero-hf-moe-stats/1"
GATE_STATS = ("mean", "rank", "top1", "top2", "conf1", "conf2")
SIDES = ("encoder", "decoder")


def lang_pair_key(source_lang: str, target_lang: str) -> str:
    """JSON key of a language pair: `"SRC-TGT"` (NLLB codes such as `eng_Latn` contain no hyphen)."""
    for lang in (source_lang, target_lang):
        if not lang or "-" in lang:
            raise ValueError(f"invalid language code {lang!r}: expected a non-empty code without '-', e.g. eng_Latn")
    return f"{source_lang}-{target_lang}"


def split_lang_pair(key: str) -> tuple[str, str]:
    """Inverse of `lang_pair_key`."""
    parts = key.split("-")
    if len(parts) != 2 or not all(parts):
        raise ValueError(f"invalid language pair {key!r}: expected SRC-TGT, e.g. eng_Latn-spa_Latn")
    return parts[0], parts[1]


@dataclass
class _LayerAccumulator:
    """Running sums over tokens for one sparse layer, one side and one language pair."""

    num_experts: int
    num_tokens: int = 0
    sums: dict[str, torch.Tensor] = field(default_factory=dict)

    def __post_init__(self):
        names = ("gate", "rank", "top1", "top2", "gate_top1", "gate_top2")
        self.sums = {name: torch.zeros(self.num_experts, dtype=torch.float64) for name in names}

    def add(self, gate_probs: torch.Tensor) -> None:
        # padding rows were zeroed by the router
        gate_probs = gate_probs.detach().to(torch.float64)
        gate_probs = gate_probs[gate_probs.sum(dim=-1) > 0]
        if gate_probs.shape[0] == 0:
            return
        order = gate_probs.argsort(dim=-1, descending=True, stable=True)
        ranks = torch.empty_like(order)
        ranks.scatter_(1, order, torch.arange(1, self.num_experts + 1).expand_as(order).contiguous())
        top1 = (ranks == 1).to(torch.float64)
        top2 = (ranks == 2).to(torch.float64)
        self.num_tokens += gate_probs.shape[0]
        self.sums["gate"] += gate_probs.sum(dim=0)
        self.sums["rank"] += ranks.to(torch.float64).sum(dim=0)
        self.sums["top1"] += top1.sum(dim=0)
        self.sums["top2"] += top2.sum(dim=0)
        self.sums["gate_top1"] += (gate_probs * top1).sum(dim=0)
        self.sums["gate_top2"] += (gate_probs * top2).sum(dim=0)

    def to_stats(self) -> dict[str, list[float]]:
        tokens = max(self.num_tokens, 1)
        sums = self.sums
        return {
            "mean": (sums["gate"] / tokens).tolist(),
            "rank": (sums["rank"] / tokens).tolist(),
            "top1": (sums["top1"] / tokens).tolist(),
            "top2": (sums["top2"] / tokens).tolist(),
            "conf1": (sums["gate_top1"] / sums["top1"].clamp(min=1)).tolist(),
            "conf2": (sums["gate_top2"] / sums["top2"].clamp(min=1)).tolist(),
        }


def sparse_layers(model: nn.Module) -> dict[tuple[str, int], PaseroNllbMoeSparseMLP]:
    """`{(side, layer_id): sparse block}` of a `PaseroNllbMoeForConditionalGeneration` or `PaseroNllbMoeModel`."""
    base = getattr(model, "model", model)
    layers = {}
    for side in SIDES:
        for layer_id, layer in enumerate(getattr(base, side).layers):
            if isinstance(layer.ffn, PaseroNllbMoeSparseMLP):
                layers[(side, layer_id)] = layer.ffn
    if not layers:
        raise ValueError(f"{type(model).__name__} has no sparse (Mixture-of-Experts) layer")
    return layers


def model_signature(config: PaseroNllbMoeConfig) -> dict:
    """What a statistics file records about its model, to refuse applying it to another one."""
    return {
        "encoder_experts_per_layer": config.experts_per_layer("encoder"),
        "decoder_experts_per_layer": config.experts_per_layer("decoder"),
        "d_model": config.d_model,
    }


class ExpertStatsCollector:
    """Gathers gate statistics per language pair from a model's routers.

    Usage::

        collector = ExpertStatsCollector(model)
        with collector.recording("eng_Latn", "spa_Latn"):
            model(**batch)          # teacher forcing, or model.generate(...)
        collector.save("stats.json")
    """

    def __init__(self, model: nn.Module):
        self.model = model
        self.layers = sparse_layers(model)
        self._accumulators: dict[str, dict[tuple[str, int], _LayerAccumulator]] = {}

    @contextlib.contextmanager
    def recording(self, source_lang: str, target_lang: str) -> Iterator[None]:
        """While active, every forward pass adds its gates to the statistics of this language pair."""
        pair = lang_pair_key(source_lang, target_lang)
        accumulators = self._accumulators.setdefault(pair, {})
        handles = []
        for key, sparse_block in self.layers.items():
            accumulator = accumulators.setdefault(key, _LayerAccumulator(sparse_block.num_experts))
            handles.append(sparse_block.router.register_forward_hook(self._hook(accumulator)))
        try:
            yield
        finally:
            for handle in handles:
                handle.remove()

    @staticmethod
    def _hook(accumulator: _LayerAccumulator):
        def record(module, inputs, outputs):
            accumulator.add(outputs[1])

        return record

    def to_dict(self) -> dict:
        """The statistics in the JSON layout described in the module docstring."""
        pairs = {}
        for pair, accumulators in self._accumulators.items():
            entry = {}
            for side in SIDES:
                side_layers = {layer_id: acc for (s, layer_id), acc in accumulators.items() if s == side}
                num_tokens = max((acc.num_tokens for acc in side_layers.values()), default=0)
                entry[side] = {
                    "num_tokens": num_tokens,
                    "layers": {str(layer_id): acc.to_stats() for layer_id, acc in sorted(side_layers.items())},
                }
            pairs[pair] = entry
        return {"format": STATS_FORMAT, "model": model_signature(self.model.config), "pairs": pairs}

    def save(self, path: str) -> None:
        """Write the statistics as JSON (atomically)."""
        save_stats(self.to_dict(), path)


def save_stats(stats: dict, path: str) -> None:
    """Write `stats` to `path` through a temporary file, so a failure never leaves a half-written file."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp_path = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=".json")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as tmp_file:
            json.dump(stats, tmp_file, indent=1)
            tmp_file.write("\n")
        os.replace(tmp_path, path)
    except BaseException:
        if os.path.exists(tmp_path):
            os.remove(tmp_path)
        raise


def load_stats(path: str) -> dict:
    """Read and validate a statistics file; errors name the file and the offending field."""
    try:
        with open(path, encoding="utf-8") as stats_file:
            stats = json.load(stats_file)
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON (line {error.lineno}): {error.msg}") from None
    if not isinstance(stats, dict) or stats.get("format") != STATS_FORMAT:
        raise ValueError(f"{path}: not a pasero-hf MoE statistics file (field 'format' should be {STATS_FORMAT!r})")
    for name in ("model", "pairs"):
        if not isinstance(stats.get(name), dict):
            raise ValueError(f"{path}: field {name!r} is missing or not an object")
    for pair, entry in stats["pairs"].items():
        split_lang_pair(pair)
        for side in SIDES:
            block = entry.get(side)
            if not isinstance(block, dict) or "num_tokens" not in block or "layers" not in block:
                raise ValueError(f"{path}: pairs.{pair}.{side} needs 'num_tokens' and 'layers'")
            for layer_id, layer_stats in block["layers"].items():
                missing = [name for name in GATE_STATS if name not in layer_stats]
                if missing:
                    raise ValueError(f"{path}: pairs.{pair}.{side}.layers.{layer_id} lacks {', '.join(missing)}")
    return stats


def check_stats_match_model(stats: dict, config: PaseroNllbMoeConfig, path: str = "<stats>") -> None:
    """Raise `ValueError` when `stats` were gathered on a model with other expert counts than `config`."""
    expected = model_signature(config)
    recorded = stats["model"]
    for name, value in expected.items():
        if recorded.get(name) != value:
            raise ValueError(
                f"{path}: statistics were gathered on another model: model.{name} is {recorded.get(name)} in the "
                f"file but {value} in the model"
            )


__all__ = [
    "ExpertStatsCollector",
    "GATE_STATS",
    "check_stats_match_model",
    "lang_pair_key",
    "load_stats",
    "model_signature",
    "save_stats",
    "sparse_layers",
    "split_lang_pair",
]
