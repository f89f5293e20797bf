"""NLLB-200 Mixture-of-Experts model with correct top-2 routing and per-layer expert counts.

Same module tree and weight names as transformers' `NllbMoeForConditionalGeneration` (a checkpoint saved by it loads
here without missing or unexpected keys); attention, embeddings and the dense feed-forward block are reused from it.
What differs is the sparse block: transformers 5.24's `NllbMoeSparseMLP` passes the one-hot top-1 mask to
`NllbMoeExperts`, which one-hot encodes it again, so only `expert_0` and `expert_1` ever run. Here each token goes to
its top-2 experts with renormalised gates, padding tokens go to no expert, and each layer can have its own expert
count (`config.encoder_experts_per_layer` / `decoder_experts_per_layer`), which pruned checkpoints need.

Routing choices (NLLB/fairseq top-2 gating):
- gates are a float32 softmax over the router logits; the top-1 expert is the argmax, the second expert is the argmax
  of the others. In training, `second_expert_policy="sampling"` adds Gumbel noise to the logits before choosing the
  second expert and `"random"` keeps it with probability `2 * gate`; at inference the choice is always
  deterministic (NLLB-200 was trained and decodes with policy `"all"`).
- the two gates are renormalised to sum to 1 (after capacity dropping, as fairseq does by default).
- padding tokens (from the attention masks) get zero gates and no expert; they are excluded from the load-balancing
  loss and from expert statistics.
- no capacity dropping unless `config.capacity_factor` is set (NLLB-200 decodes with capacity = number of tokens).
"""

import math
import os

import torch
import torch.nn as nn
import torch.nn.functional as F
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.cache_utils import Cache, DynamicCache, EncoderDecoderCache
from transformers.generation import GenerationMixin
from transformers.loss.loss_utils import fixed_cross_entropy
from transformers.masking_utils import create_bidirectional_mask, create_causal_mask
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import (
    MoEModelOutput,
    MoEModelOutputWithPastAndCrossAttentions,
    Seq2SeqMoEModelOutput,
    Seq2SeqMoEOutput,
)
from transformers.models.nllb_moe.modeling_nllb_moe import (
    NllbMoeAttention,
    NllbMoeDenseActDense,
    NllbMoeScaledWordEmbedding,
    NllbMoeSinusoidalPositionalEmbedding,
    shift_tokens_right,
)
from transformers.utils.generic import merge_with_config_defaults
from transformers.utils.output_capturing import OutputRecorder, capture_outputs

from .checkpoint_inspection import check_checkpoint_expert_counts, check_model_type
from .configuration_pasero_nllb_moe import PaseroNllbMoeConfig


class PaseroNllbMoeTop2Router(nn.Module):
    """Top-2 gate of one sparse layer.

    `forward(hidden_states [N, D], padding_mask [N] (True = padding) or None)` returns a tuple
    `(router_logits [N, E], gate_probs [N, E], expert_ids [N, 2], expert_weights [N, 2])`: `gate_probs` is the
    softmax with padding rows zeroed (what expert statistics read), `expert_weights` the renormalised weights of the
    two chosen experts (0 for padding and for dropped assignments).
    """

    def __init__(self, config: PaseroNllbMoeConfig, num_experts: int):
        super().__init__()
        self.num_experts = num_experts
        self.classifier = nn.Linear(config.d_model, num_experts, bias=config.router_bias)
        self.router_dtype = getattr(torch, config.router_dtype)
        self.second_expert_policy = config.second_expert_policy
        self.capacity_factor = config.capacity_factor

    def forward(
        self, hidden_states: torch.Tensor, padding_mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        # bitsandbytes or fp16 checkpoints: compute the gate in the router dtype without casting the module in place
        weight = self.classifier.weight.to(self.router_dtype)
        bias = None if self.classifier.bias is None else self.classifier.bias.to(self.router_dtype)
        router_logits = F.linear(hidden_states.to(self.router_dtype), weight, bias)
        gate_probs = router_logits.softmax(dim=-1)

        top1 = gate_probs.argmax(dim=-1)
        second_choice_logits = router_logits
        if self.training and self.second_expert_policy == "sampling":
            gumbel = torch.distributions.gumbel.Gumbel(0.0, 1.0)
            second_choice_logits = router_logits + gumbel.sample(router_logits.shape).to(router_logits)
        second_choice_logits = second_choice_logits.scatter(1, top1[:, None], float("-inf"))
        top2 = second_choice_logits.argmax(dim=-1)
        expert_ids = torch.stack([top1, top2], dim=1)
        chosen_probs = gate_probs.gather(1, expert_ids)

        keep = torch.ones_like(chosen_probs, dtype=torch.bool)
        if self.training and self.second_expert_policy == "random":
            keep[:, 1] = 2 * chosen_probs[:, 1] > torch.rand_like(chosen_probs[:, 1])
        if padding_mask is not None:
            keep &= ~padding_mask[:, None]
            gate_probs = gate_probs.masked_fill(padding_mask[:, None], 0.0)
        if self.capacity_factor is not None:
            keep &= self._within_capacity(expert_ids, keep)

        kept_probs = chosen_probs * keep
        expert_weights = kept_probs / kept_probs.sum(dim=1, keepdim=True).clamp(min=torch.finfo(kept_probs.dtype).eps)
        return router_logits, gate_probs, expert_ids, expert_weights

    def _within_capacity(self, expert_ids: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """Which assignments fit in their expert's buffer: top-1 assignments take places first, in token order."""
        num_tokens = int(keep[:, 0].sum())
        capacity = math.ceil(self.capacity_factor * 2 * num_tokens / self.num_experts)
        one_hot = F.one_hot(expert_ids, self.num_experts) * keep[..., None]  # [N, 2, E]
        position_top1 = one_hot[:, 0].cumsum(dim=0) - 1
        position_top2 = one_hot[:, 1].cumsum(dim=0) - 1 + one_hot[:, 0].sum(dim=0, keepdim=True)
        positions = torch.stack([position_top1, position_top2], dim=1)
        return ((positions * one_hot).sum(dim=-1) < capacity)


class PaseroNllbMoeSparseMLP(nn.Module):
    """Top-2 Mixture of Experts replacing the feed-forward block of a sparse layer."""

    def __init__(self, config: PaseroNllbMoeConfig, ffn_dim: int, num_experts: int):
        super().__init__()
        self.router = PaseroNllbMoeTop2Router(config, num_experts)
        self.experts = nn.ModuleDict(
            {f"expert_{expert_id}": NllbMoeDenseActDense(config, ffn_dim) for expert_id in range(num_experts)}
        )
        self.moe_token_dropout = config.moe_token_dropout

    @property
    def num_experts(self) -> int:
        return len(self.experts)

    def forward(self, hidden_states: torch.Tensor, padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        batch_size, seq_len, dim = hidden_states.shape
        tokens = hidden_states.reshape(-1, dim)
        flat_padding = None if padding_mask is None else padding_mask.reshape(-1)
        _, _, expert_ids, expert_weights = self.router(tokens, flat_padding)

        output = torch.zeros_like(tokens)
        routed = expert_weights > 0
        for expert_id in range(self.num_experts):
            token_ids, slot = torch.nonzero((expert_ids == expert_id) & routed, as_tuple=True)
            if token_ids.numel() == 0:
                continue
            expert_output = self.experts[f"expert_{expert_id}"](tokens[token_ids])
            expert_output = expert_output * expert_weights[token_ids, slot, None].to(expert_output.dtype)
            expert_output = self._mask_expert_output(expert_output)
            output.index_add_(0, token_ids, expert_output.to(output.dtype))
        return output.reshape(batch_size, seq_len, dim)

    def _mask_expert_output(self, expert_output: torch.Tensor) -> torch.Tensor:
        # Expert output masking zeroes whole token outputs without rescaling, so inference scales by the keep rate.
        if self.moe_token_dropout <= 0:
            return expert_output
        if self.training:
            keep = torch.rand(expert_output.shape[0], 1, device=expert_output.device) >= self.moe_token_dropout
            return expert_output * keep
        return expert_output * (1 - self.moe_token_dropout)


def _padding_mask(attention_mask: torch.Tensor | None, seq_len: int) -> torch.Tensor | None:
    """Boolean padding mask (True = padding) of the last `seq_len` positions of a 2D attention mask."""
    if attention_mask is None or attention_mask.dim() != 2:
        return None
    return attention_mask[:, -seq_len:] == 0


class _PaseroNllbMoeLayer(GradientCheckpointingLayer):
    """What encoder and decoder layers share: the (sparse or dense) feed-forward block and its residual, built by
    subclasses after their attention blocks (module order, hence seeded initialization, as in transformers)."""

    def init_feed_forward(self, config: PaseroNllbMoeConfig, side: str, layer_idx: int) -> None:
        num_experts = getattr(config, f"{side}_experts_per_layer")[layer_idx]
        self.is_sparse = num_experts > 0
        ffn_dim = getattr(config, f"{side}_ffn_dim")
        if self.is_sparse:
            self.ffn = PaseroNllbMoeSparseMLP(config, ffn_dim, num_experts)
        else:
            self.ffn = NllbMoeDenseActDense(config, ffn_dim)
        self.ff_layer_norm = nn.LayerNorm(config.d_model)
        self.ff_dropout = nn.Dropout(config.activation_dropout)

    def feed_forward(self, hidden_states: torch.Tensor, padding_mask: torch.Tensor | None) -> torch.Tensor:
        residual = hidden_states
        hidden_states = self.ff_layer_norm(hidden_states)
        hidden_states = self.ffn(hidden_states, padding_mask) if self.is_sparse else self.ffn(hidden_states)
        hidden_states = residual + self.ff_dropout(hidden_states)
        if hidden_states.dtype == torch.float16:
            clamp_value = torch.finfo(hidden_states.dtype).max - 1000
            hidden_states = hidden_states.clamp(min=-clamp_value, max=clamp_value)
        return hidden_states


class PaseroNllbMoeEncoderLayer(_PaseroNllbMoeLayer):
    def __init__(self, config: PaseroNllbMoeConfig, layer_idx: int):
        super().__init__()
        self.embed_dim = config.d_model
        self.self_attn = NllbMoeAttention(
            embed_dim=self.embed_dim,
            num_heads=config.encoder_attention_heads,
            dropout=config.attention_dropout,
            config=config,
            layer_idx=layer_idx,
        )
        self.attn_dropout = nn.Dropout(config.dropout)
        self.self_attn_layer_norm = nn.LayerNorm(self.embed_dim)
        self.init_feed_forward(config, "encoder", layer_idx)

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None,
        padding_mask: torch.Tensor | None = None,
        **kwargs,
    ) -> torch.Tensor:
        residual = hidden_states
        hidden_states = self.self_attn_layer_norm(hidden_states)
        hidden_states, _ = self.self_attn(hidden_states, attention_mask=attention_mask, **kwargs)
        hidden_states = residual + self.attn_dropout(hidden_states)
        return self.feed_forward(hidden_states, padding_mask)


class PaseroNllbMoeDecoderLayer(_PaseroNllbMoeLayer):
    def __init__(self, config: PaseroNllbMoeConfig, layer_idx: int):
        super().__init__()
        self.embed_dim = config.d_model
        self.self_attn = NllbMoeAttention(
            embed_dim=self.embed_dim,
            num_heads=config.decoder_attention_heads,
            dropout=config.attention_dropout,
            is_decoder=True,
            # without it, SDPA attends to future tokens whenever the causal mask is omitted (no padding)
            is_causal=True,
            config=config,
            layer_idx=layer_idx,
        )
        self.attn_dropout = nn.Dropout(config.dropout)
        self.self_attn_layer_norm = nn.LayerNorm(self.embed_dim)
        self.cross_attention = NllbMoeAttention(
            self.embed_dim,
            config.decoder_attention_heads,
            config.attention_dropout,
            is_decoder=True,
            config=config,
            layer_idx=layer_idx,
        )
        self.cross_attention_layer_norm = nn.LayerNorm(self.embed_dim)
        self.init_feed_forward(config, "decoder", layer_idx)

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        encoder_hidden_states: torch.Tensor | None = None,
        encoder_attention_mask: torch.Tensor | None = None,
        cache: Cache | None = None,
        padding_mask: torch.Tensor | None = None,
        **kwargs,
    ) -> torch.Tensor:
        residual = hidden_states
        hidden_states = self.self_attn_layer_norm(hidden_states)
        hidden_states, _ = self.self_attn(
            hidden_states=hidden_states, cache=cache, attention_mask=attention_mask, **kwargs
        )
        hidden_states = residual + self.attn_dropout(hidden_states)

        if encoder_hidden_states is not None:
            residual = hidden_states
            hidden_states = self.cross_attention_layer_norm(hidden_states)
            hidden_states, _ = self.cross_attention(
                hidden_states=hidden_states,
                key_value_states=encoder_hidden_states,
                cache=cache,
                attention_mask=encoder_attention_mask,
                **kwargs,
            )
            hidden_states = residual + self.attn_dropout(hidden_states)
        return self.feed_forward(hidden_states, padding_mask)


class PaseroNllbMoePreTrainedModel(PreTrainedModel):
    config_class = PaseroNllbMoeConfig
    config: PaseroNllbMoeConfig
    base_model_prefix = "model"
    supports_gradient_checkpointing = True
    _no_split_modules = ["PaseroNllbMoeEncoderLayer", "PaseroNllbMoeDecoderLayer"]
    _supports_sdpa = True
    _supports_flash_attn = False
    _supports_flex_attn = False

    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)
        if isinstance(module, NllbMoeSinusoidalPositionalEmbedding):
            weights = module.get_embedding(module.num_positions + module.offset, module.embedding_dim, module.padding_idx)
            init.copy_(module.weights, weights)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *model_args, **kwargs):
        """`PreTrainedModel.from_pretrained`, after checking that a local safetensors checkpoint has the expert
        counts its configuration declares (a clear error naming the layer instead of size-mismatch noise)."""
        path = os.fspath(pretrained_model_name_or_path)
        if os.path.isdir(path):
            check_model_type(path)
            config = kwargs.get("config")
            if not isinstance(config, PaseroNllbMoeConfig):
                config = PaseroNllbMoeConfig.from_pretrained(path)
            check_checkpoint_expert_counts(path, config)
        return super().from_pretrained(pretrained_model_name_or_path, *model_args, **kwargs)


class _PaseroNllbMoeStack(PaseroNllbMoePreTrainedModel):
    """What the encoder and the decoder share: embeddings, positions, layers, final norm."""

    def __init__(self, config: PaseroNllbMoeConfig, side: str, layer_class: type):
        super().__init__(config)
        self.dropout = config.dropout
        self.layerdrop = getattr(config, f"{side}_layerdrop")
        self.padding_idx = config.pad_token_id
        embed_scale = math.sqrt(config.d_model) if config.scale_embedding else 1.0
        self.embed_tokens = NllbMoeScaledWordEmbedding(
            config.vocab_size, config.d_model, self.padding_idx, embed_scale=embed_scale
        )
        self.embed_positions = NllbMoeSinusoidalPositionalEmbedding(
            config.max_position_embeddings, config.d_model, self.padding_idx
        )
        self.layers = nn.ModuleList(layer_class(config, idx) for idx in range(getattr(config, f"{side}_layers")))
        self.layer_norm = nn.LayerNorm(config.d_model)
        self.gradient_checkpointing = False
        self.post_init()

    def skip_layer(self) -> bool:
        return self.training and self.layerdrop > 0.0 and bool(torch.rand([]) < self.layerdrop)


class PaseroNllbMoeEncoder(_PaseroNllbMoeStack):
    _can_record_outputs = {
        "hidden_states": PaseroNllbMoeEncoderLayer,
        "router_logits": OutputRecorder(PaseroNllbMoeTop2Router, index=0),
        "attentions": NllbMoeAttention,
    }

    def __init__(self, config: PaseroNllbMoeConfig):
        super().__init__(config, "encoder", PaseroNllbMoeEncoderLayer)

    @merge_with_config_defaults
    @capture_outputs
    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        **kwargs,
    ) -> MoEModelOutput:
        if inputs_embeds is None:
            inputs_embeds = self.embed_tokens(input_ids)
        positions = self.embed_positions(input_ids, inputs_embeds).to(inputs_embeds.device)
        hidden_states = F.dropout(inputs_embeds + positions, p=self.dropout, training=self.training)

        padding_mask = _padding_mask(attention_mask, hidden_states.shape[1])
        attention_mask = create_bidirectional_mask(
            config=self.config, inputs_embeds=inputs_embeds, attention_mask=attention_mask
        )
        for layer in self.layers:
            if self.skip_layer():
                continue
            hidden_states = layer(hidden_states, attention_mask, padding_mask=padding_mask, **kwargs)
        return MoEModelOutput(last_hidden_state=self.layer_norm(hidden_states))


class PaseroNllbMoeDecoder(_PaseroNllbMoeStack):
    _can_record_outputs = {
        "hidden_states": PaseroNllbMoeDecoderLayer,
        "attentions": OutputRecorder(NllbMoeAttention, layer_name="self_attn", index=1),
        "router_logits": OutputRecorder(PaseroNllbMoeTop2Router, index=0),
        "cross_attentions": OutputRecorder(NllbMoeAttention, layer_name="cross_attention", index=1),
    }

    def __init__(self, config: PaseroNllbMoeConfig):
        super().__init__(config, "decoder", PaseroNllbMoeDecoderLayer)

    @merge_with_config_defaults
    @capture_outputs
    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        encoder_hidden_states: torch.Tensor | None = None,
        encoder_attention_mask: torch.Tensor | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        **kwargs,
    ) -> MoEModelOutputWithPastAndCrossAttentions:
        if inputs_embeds is None:
            inputs_embeds = self.embed_tokens(input_ids)
        if use_cache and cache is None:
            cache = EncoderDecoderCache(DynamicCache(config=self.config), DynamicCache(config=self.config))
        cache_length = cache.get_seq_length() if cache is not None else 0

        padding_mask = _padding_mask(attention_mask, inputs_embeds.shape[1])
        attention_mask = create_causal_mask(
            config=self.config, inputs_embeds=inputs_embeds, attention_mask=attention_mask, cache=cache
        )
        encoder_attention_mask = create_bidirectional_mask(
            config=self.config,
            inputs_embeds=inputs_embeds,
            attention_mask=encoder_attention_mask,
            encoder_hidden_states=encoder_hidden_states,
        )
        positions = self.embed_positions(input_ids, inputs_embeds, cache_length).to(inputs_embeds.device)
        hidden_states = F.dropout(inputs_embeds + positions, p=self.dropout, training=self.training)

        for layer in self.layers:
            if self.skip_layer():
                continue
            hidden_states = layer(
                hidden_states,
                attention_mask,
                encoder_hidden_states,
                encoder_attention_mask=encoder_attention_mask,
                cache=cache,
                padding_mask=padding_mask,
                use_cache=use_cache,
                **kwargs,
            )
        return MoEModelOutputWithPastAndCrossAttentions(last_hidden_state=self.layer_norm(hidden_states), cache=cache)


class PaseroNllbMoeModel(PaseroNllbMoePreTrainedModel):
    _tied_weights_keys = {
        "encoder.embed_tokens.weight": "shared.weight",
        "decoder.embed_tokens.weight": "shared.weight",
    }

    def __init__(self, config: PaseroNllbMoeConfig):
        super().__init__(config)
        embed_scale = math.sqrt(config.d_model) if config.scale_embedding else 1.0
        self.shared = NllbMoeScaledWordEmbedding(
            config.vocab_size, config.d_model, config.pad_token_id, embed_scale=embed_scale
        )
        self.encoder = PaseroNllbMoeEncoder(config)
        self.decoder = PaseroNllbMoeDecoder(config)
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.shared

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.shared = value
        self.encoder.embed_tokens = self.shared
        self.decoder.embed_tokens = self.shared

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        decoder_input_ids: torch.LongTensor | None = None,
        decoder_attention_mask: torch.LongTensor | None = None,
        encoder_outputs: MoEModelOutput | tuple | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        decoder_inputs_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        **kwargs,
    ) -> Seq2SeqMoEModelOutput:
        if encoder_outputs is None:
            encoder_outputs = self.encoder(
                input_ids=input_ids, attention_mask=attention_mask, inputs_embeds=inputs_embeds, **kwargs
            )
        elif not isinstance(encoder_outputs, MoEModelOutput):
            encoder_outputs = MoEModelOutput(last_hidden_state=encoder_outputs[0])
        decoder_outputs = self.decoder(
            input_ids=decoder_input_ids,
            attention_mask=decoder_attention_mask,
            encoder_hidden_states=encoder_outputs.last_hidden_state,
            encoder_attention_mask=attention_mask,
            cache=cache,
            inputs_embeds=decoder_inputs_embeds,
            use_cache=use_cache,
            **kwargs,
        )
        return Seq2SeqMoEModelOutput(
            cache=decoder_outputs.cache,
            cross_attentions=decoder_outputs.cross_attentions,
            last_hidden_state=decoder_outputs.last_hidden_state,
            encoder_last_hidden_state=encoder_outputs.last_hidden_state,
            encoder_hidden_states=encoder_outputs.hidden_states,
            decoder_hidden_states=decoder_outputs.hidden_states,
            encoder_attentions=encoder_outputs.attentions,
            decoder_attentions=decoder_outputs.attentions,
            encoder_router_logits=encoder_outputs.router_logits,
            decoder_router_logits=decoder_outputs.router_logits,
        )


def load_balancing_loss(router_logits: tuple[torch.Tensor, ...] | None, attention_mask: torch.Tensor | None) -> torch.Tensor:
    """Mean over sparse layers of the GShard/fairseq balancing loss `E * sum_e(gate_mean_e * top1_share_e)`, over
    non-padding tokens. Each layer may have its own expert count, so layers are not concatenated."""
    if not router_logits:
        return torch.tensor(0.0)
    losses = []
    for logits in router_logits:
        num_experts = logits.shape[-1]
        probs = logits.float().softmax(dim=-1)
        top1 = F.one_hot(probs.argmax(dim=-1), num_experts).float()
        if attention_mask is not None:
            real = attention_mask.reshape(-1)[-logits.shape[0]:].to(probs)[:, None]
        else:
            real = torch.ones_like(probs[:, :1])
        num_tokens = real.sum().clamp(min=1)
        gate_mean = (probs * real).sum(dim=0) / num_tokens
        top1_share = (top1 * real).sum(dim=0) / num_tokens
        losses.append(num_experts * (gate_mean * top1_share).sum())
    return torch.stack(losses).mean()


class PaseroNllbMoeForConditionalGeneration(PaseroNllbMoePreTrainedModel, GenerationMixin):
    """NLLB-MoE translation model: [`PaseroNllbMoeModel`] plus the (tied) output projection.

    With `labels`, the loss is the token cross-entropy, plus `router_aux_loss_coef` times the load-balancing loss of
    the encoder and decoder when `output_router_logits=True`.
    """

    _tied_weights_keys = {"lm_head.weight": "model.shared.weight"}

    def __init__(self, config: PaseroNllbMoeConfig):
        super().__init__(config)
        self.model = PaseroNllbMoeModel(config)
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        self.post_init()

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        decoder_input_ids: torch.LongTensor | None = None,
        decoder_attention_mask: torch.LongTensor | None = None,
        encoder_outputs: MoEModelOutput | tuple | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        decoder_inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        output_router_logits: bool | None = None,
        num_items_in_batch: torch.Tensor | int | None = None,
        **kwargs,
    ) -> Seq2SeqMoEOutput:
        if output_router_logits is None:
            output_router_logits = self.config.output_router_logits
        if labels is not None and decoder_input_ids is None and decoder_inputs_embeds is None:
            decoder_input_ids = shift_tokens_right(labels, self.config.pad_token_id, self.config.decoder_start_token_id)
        outputs = self.model(
            input_ids,
            attention_mask=attention_mask,
            decoder_input_ids=decoder_input_ids,
            decoder_attention_mask=decoder_attention_mask,
            encoder_outputs=encoder_outputs,
            cache=cache,
            inputs_embeds=inputs_embeds,
            decoder_inputs_embeds=decoder_inputs_embeds,
            use_cache=use_cache,
            output_router_logits=output_router_logits,
            **kwargs,
        )
        logits = self.lm_head(outputs.last_hidden_state)

        loss = encoder_aux_loss = decoder_aux_loss = None
        if labels is not None:
            # over `num_items_in_batch` tokens when `Trainer` passes the token count of the whole accumulated batch
            logits_2d = logits.reshape(-1, logits.shape[-1]).float()
            loss = fixed_cross_entropy(logits_2d, labels.to(logits.device).reshape(-1), num_items_in_batch)
            if output_router_logits:
                encoder_aux_loss = load_balancing_loss(outputs.encoder_router_logits, attention_mask)
                decoder_aux_loss = load_balancing_loss(outputs.decoder_router_logits, decoder_attention_mask)
                loss = loss + self.config.router_aux_loss_coef * (encoder_aux_loss + decoder_aux_loss).to(loss)

        return Seq2SeqMoEOutput(
            loss=loss,
            logits=logits,
            cache=outputs.cache,
            cross_attentions=outputs.cross_attentions,
            encoder_aux_loss=encoder_aux_loss,
            decoder_aux_loss=decoder_aux_loss,
            encoder_last_hidden_state=outputs.encoder_last_hidden_state,
            encoder_hidden_states=outputs.encoder_hidden_states,
            decoder_hidden_states=outputs.decoder_hidden_states,
            encoder_attentions=outputs.encoder_attentions,
            decoder_attentions=outputs.decoder_attentions,
            encoder_router_logits=outputs.encoder_router_logits,
            decoder_router_logits=outputs.decoder_router_logits,
        )


__all__ = [
    "PaseroNllbMoeTop2Router",
    "PaseroNllbMoeSparseMLP",
    "PaseroNllbMoePreTrainedModel",
    "PaseroNllbMoeModel",
    "PaseroNllbMoeForConditionalGeneration",
    "check_checkpoint_expert_counts",
    "load_balancing_loss",
]
