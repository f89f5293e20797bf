"""NLLB-200 Mixture-of-Experts: model with correct top-2 routing, gate statistics and language-specific pruning."""

from .configuration_pasero_nllb_moe import PaseroNllbMoeConfig
from .expert_stats import ExpertStatsCollector, load_stats, save_stats
from .modeling_pasero_nllb_moe import (
    PaseroNllbMoeForConditionalGeneration,
    PaseroNllbMoeModel,
    PaseroNllbMoePreTrainedModel,
)
from .pruning import ExpertSelection, expert_scores, prune_model, select_experts

__all__ = [
    "ExpertSelection",
    "ExpertStatsCollector",
    "PaseroNllbMoeConfig",
    "PaseroNllbMoeForConditionalGeneration",
    "PaseroNllbMoeModel",
    "PaseroNllbMoePreTrainedModel",
    "expert_scores",
    "load_stats",
    "prune_model",
    "save_stats",
    "select_experts",
]
