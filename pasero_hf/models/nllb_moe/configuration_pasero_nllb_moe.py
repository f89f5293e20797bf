"""Configuration of pasero-hf's NLLB-200 Mixture-of-Experts model (`model_type="pasero_nllb_moe"`).

It accepts every field of transformers' `NllbMoeConfig` (so NLLB-MoE `config.json` files load unchanged) and adds
per-layer expert counts, which language-specific expert pruning needs.
"""

from typing import Literal

from transformers import PreTrainedConfig


def sparse_layer_ids(num_layers: int, sparse_step: int) -> list[int]:
    """Ids of the layers that hold experts: every `sparse_step`-th layer (NLLB-MoE: layers 3, 7, 11, ...)."""
    if sparse_step <= 0:
        return []
    return [layer_id for layer_id in range(num_layers) if (layer_id + 1) % sparse_step == 0]


class PaseroNllbMoeConfig(PreTrainedConfig):
    r"""
    Configuration of [`PaseroNllbMoeForConditionalGeneration`]: an NLLB-200 style pre-norm Transformer whose
    every `encoder_sparse_step`-th encoder layer and `decoder_sparse_step`-th decoder layer replaces its feed-forward
    block by a top-2 Mixture of Experts.

    Fields shared with transformers' `NllbMoeConfig` keep their meaning; the routing fields differ as follows:

    Args:
        vocab_size, d_model, encoder_layers, decoder_layers, encoder_ffn_dim, decoder_ffn_dim,
        encoder_attention_heads, decoder_attention_heads, max_position_embeddings, scale_embedding,
        activation_function, dropout, attention_dropout, activation_dropout, encoder_layerdrop, decoder_layerdrop,
        init_std, pad_token_id, bos_token_id, eos_token_id, decoder_start_token_id, tie_word_embeddings:
            standard Transformer hyper-parameters, as in `NllbMoeConfig` (NLLB-200 54B: d_model 2048, 24+24 layers,
            ffn 8192, 16 heads, vocab 256206).
        num_experts (`int`, defaults to 128):
            experts per sparse layer when no per-layer list is given.
        encoder_experts_per_layer / decoder_experts_per_layer (`list[int]`, *optional*):
            one expert count per layer (0 for a dense layer). Pruned checkpoints store different counts per layer
            here. When omitted, they are derived from `num_experts` and the sparse steps. Non-zero entries must be
            exactly the sparse layers, each with at least 2 experts (top-2 routing).
        encoder_sparse_step / decoder_sparse_step (`int`, defaults to 4):
            every N-th layer is sparse.
        router_bias (`bool`, defaults to False): whether the router has a bias.
        router_dtype (`str`, defaults to `"float32"`): dtype of the router's logits and softmax.
        second_expert_policy (`str`, defaults to `"all"`):
            how the second expert is chosen **during training**: `"all"` (always the second best), `"sampling"`
            (Gumbel-noised logits, fairseq's default) or `"random"` (kept with probability 2 x its gate). At inference
            the second expert is always the deterministic second best, as NLLB-200 decodes.
        capacity_factor (`float`, *optional*):
            when set, an expert accepts at most `ceil(capacity_factor * 2 * tokens / experts)` tokens per batch (top-1
            assignments first) and the rest of its tokens are dropped; `None` (default) never drops tokens. NLLB-200
            decodes with `moe_eval_capacity_token_fraction=1.0`, which never drops either.
        moe_token_dropout (`float`, defaults to 0.2):
            expert output masking (EOM): in training, each token's output from each of its experts is zeroed with
            this probability; at inference the outputs are scaled by `1 - moe_token_dropout` (as transformers'
            NLLB-MoE port does).
        router_aux_loss_coef (`float`, defaults to 0.001):
            weight of the load-balancing loss added to the LM loss when `output_router_logits=True`.
        router_ignore_padding_tokens, expert_capacity, router_z_loss_coef, normalize_router_prob_before_dropping,
        batch_prioritized_routing, moe_eval_capacity_token_fraction:
            accepted for compatibility with `NllbMoeConfig` files; not used (padding is never routed here).
    """

    model_type = "pasero_nllb_moe"
    keys_to_ignore_at_inference = ["past_key_values", "cache"]
    attribute_map = {
        "num_attention_heads": "encoder_attention_heads",
        "hidden_size": "d_model",
        "num_hidden_layers": "encoder_layers",
    }

    vocab_size: int = 128112
    max_position_embeddings: int = 1024
    encoder_layers: int = 12
    encoder_ffn_dim: int = 4096
    encoder_attention_heads: int = 16
    decoder_layers: int = 12
    decoder_ffn_dim: int = 4096
    decoder_attention_heads: int = 16
    encoder_layerdrop: float = 0.05
    decoder_layerdrop: float = 0.05
    use_cache: bool = True
    is_encoder_decoder: bool = True
    activation_function: str = "relu"
    d_model: int = 1024
    dropout: float = 0.1
    attention_dropout: float = 0.1
    activation_dropout: float = 0.0
    init_std: float = 0.02
    decoder_start_token_id: int | None = 2
    scale_embedding: bool = True
    router_bias: bool = False
    router_dtype: Literal["float32", "float16", "bfloat16"] = "float32"
    router_ignore_padding_tokens: bool = False
    num_experts: int = 128
    encoder_experts_per_layer: list[int] | None = None
    decoder_experts_per_layer: list[int] | None = None
    expert_capacity: int = 64
    capacity_factor: float | None = None
    encoder_sparse_step: int = 4
    decoder_sparse_step: int = 4
    router_z_loss_coef: float = 0.001
    router_aux_loss_coef: float = 0.001
    second_expert_policy: str = "all"
    normalize_router_prob_before_dropping: bool = False
    batch_prioritized_routing: bool = False
    moe_eval_capacity_token_fraction: float = 1.0
    moe_token_dropout: float = 0.2
    pad_token_id: int | None = 1
    bos_token_id: int | None = 0
    eos_token_id: int | list[int] | None = 2
    tie_word_embeddings: bool = True
    output_router_logits: bool = False

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        if self.second_expert_policy not in ("all", "sampling", "random"):
            raise ValueError(
                f"second_expert_policy: expected 'all', 'sampling' or 'random', got {self.second_expert_policy!r}"
            )
        self.encoder_experts_per_layer = self._experts_per_layer(
            "encoder", self.encoder_experts_per_layer, self.encoder_layers, self.encoder_sparse_step
        )
        self.decoder_experts_per_layer = self._experts_per_layer(
            "decoder", self.decoder_experts_per_layer, self.decoder_layers, self.decoder_sparse_step
        )

    def _experts_per_layer(self, side: str, counts: list[int] | None, num_layers: int, sparse_step: int) -> list[int]:
        sparse = set(sparse_layer_ids(num_layers, sparse_step))
        if counts is None:
            return [self.num_experts if layer_id in sparse else 0 for layer_id in range(num_layers)]
        field = f"{side}_experts_per_layer"
        counts = [int(count) for count in counts]
        if len(counts) != num_layers:
            raise ValueError(f"{field}: expected one count per {side} layer ({num_layers}), got {len(counts)}")
        for layer_id, count in enumerate(counts):
            if layer_id in sparse and count < 2:
                raise ValueError(
                    f"{field}: {side} layer {layer_id} is sparse ({side}_sparse_step={sparse_step}) and needs at "
                    f"least 2 experts for top-2 routing, got {count}"
                )
            if layer_id not in sparse and count != 0:
                raise ValueError(
                    f"{field}: {side} layer {layer_id} is dense ({side}_sparse_step={sparse_step}) and must have 0 "
                    f"experts, got {count}"
                )
        return counts

    def experts_per_layer(self, side: str) -> list[int]:
        """Expert counts of the `"encoder"` or `"decoder"` layers (0 for dense layers)."""
        if side not in ("encoder", "decoder"):
            raise ValueError(f"side: expected 'encoder' or 'decoder', got {side!r}")
        return list(getattr(self, f"{side}_experts_per_layer"))


__all__ = ["PaseroNllbMoeConfig", "sparse_layer_ids"]
