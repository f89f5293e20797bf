"""The Pasero Transformer (fairseq-style encoder-decoder, with optional bottleneck adapters) for `transformers`.

Self-contained (imports only torch, transformers and the standard library; the configuration is imported relatively)
so that `save_pretrained` can copy it next to the weights for `trust_remote_code=True` loading.

Layout and numerics follow Pasero: token embeddings scaled by sqrt(embed_dim), positions starting at
`positional_encoding_shift` (2, as in fairseq), post-norm or pre-norm layers, decoder starting with `</s>`.
Bottleneck adapters (Bapna et al., 2019) follow each layer when configured: named, stacked in order, selected per
batch from its languages or domain, or explicitly with `set_active_adapters`.
"""

import math
from collections.abc import Callable, Sequence

import torch
from torch import nn
from transformers import GenerationMixin, PreTrainedModel
from transformers import initialization as init
from transformers.cache_utils import Cache, DynamicCache, EncoderDecoderCache
from transformers.loss.loss_utils import fixed_cross_entropy
from transformers.masking_utils import create_bidirectional_mask, create_causal_mask
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import (
    BaseModelOutput,
    BaseModelOutputWithPastAndCrossAttentions,
    Seq2SeqLMOutput,
    Seq2SeqModelOutput,
)
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
from transformers.utils import logging
from transformers.utils.generic import can_return_tuple, merge_with_config_defaults
from transformers.utils.output_capturing import OutputRecorder, capture_outputs

from .adapters_pasero import PaseroAdapterControls, PaseroAdapterLayer, PaseroAdapterStack, init_adapter_projection
from .configuration_pasero import PaseroConfig

logger = logging.get_logger(__name__)

_ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "gelu": lambda: nn.GELU(approximate="none"),
    "gelu_tanh": lambda: nn.GELU(approximate="tanh"),
}


def shift_tokens_right(labels: torch.LongTensor, pad_token_id: int, decoder_start_token_id: int) -> torch.LongTensor:
    """Decoder inputs for teacher forcing: `decoder_start_token_id` followed by the labels minus their last token."""
    shifted = labels.new_zeros(labels.shape)
    shifted[:, 1:] = labels[:, :-1]
    shifted[:, 0] = decoder_start_token_id
    return shifted.masked_fill(shifted == -100, pad_token_id)


def eager_attention_forward(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float,
    dropout: float = 0.0,
    **kwargs,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Plain softmax attention; returns the output as (B, T, H, D) and the weights as (B, H, T, S). Also takes the
    boolean masks built for SDPA, as it stands in for SDPA when weights are asked for."""
    weights = torch.matmul(query, key.transpose(2, 3)) * scaling
    if attention_mask is not None and attention_mask.dtype == torch.bool:
        weights = weights.masked_fill(~attention_mask, torch.finfo(weights.dtype).min)
    elif attention_mask is not None:
        weights = weights + attention_mask
    weights = nn.functional.softmax(weights.float(), dim=-1).to(query.dtype)
    weights = nn.functional.dropout(weights, p=dropout, training=module.training)
    output = torch.matmul(weights, value).transpose(1, 2).contiguous()
    return output, weights


class PaseroSinusoidalPositions(nn.Module):
    """Fixed sinusoidal position embeddings (fairseq's formula), indexed by absolute position."""

    def __init__(self, num_positions: int, embedding_dim: int):
        super().__init__()
        self.num_positions = num_positions
        self.embedding_dim = embedding_dim
        self.register_buffer("weight", self.table(num_positions, embedding_dim), persistent=False)

    @staticmethod
    def table(num_positions: int, embedding_dim: int) -> torch.Tensor:
        half_dim = embedding_dim // 2
        frequencies = torch.exp(torch.arange(half_dim, dtype=torch.float) * -(math.log(10000) / (half_dim - 1)))
        angles = torch.arange(num_positions, dtype=torch.float).unsqueeze(1) * frequencies.unsqueeze(0)
        table = torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)
        if embedding_dim % 2:
            table = torch.cat([table, torch.zeros(num_positions, 1)], dim=1)
        return table

    def forward(self, positions: torch.LongTensor) -> torch.Tensor:
        return self.weight[positions]


class PaseroLearnedPositions(nn.Embedding):
    """Learned position embeddings, indexed by absolute position."""


class PaseroAttention(nn.Module):
    """Multi-head attention (self or cross). Head count is derived from the projection's local output size, so that
    tensor-parallel sharding of q/k/v (colwise) and out_proj (rowwise) works unchanged."""

    def __init__(self, config: PaseroConfig, num_heads: int, layer_idx: int, is_cross_attention: bool = False,
                 is_causal: bool = False):
        super().__init__()
        self.config = config
        embed_dim = config.embed_dim
        self.head_dim = embed_dim // num_heads
        self.scaling = self.head_dim**-0.5 if config.scale_attn else 1.0
        self.dropout = config.attention_dropout
        self.layer_idx = layer_idx
        self.is_cross_attention = is_cross_attention
        # Decoder self-attention: when the causal mask is skipped (no padding, no cached prefix), SDPA and flash
        # attention apply causality themselves, skipping the masked blocks instead of reading a mask.
        self.is_causal = is_causal
        self.q_proj = nn.Linear(embed_dim, embed_dim, bias=config.has_bias)
        self.k_proj = nn.Linear(embed_dim, embed_dim, bias=config.has_bias and config.attention_key_bias)
        self.v_proj = nn.Linear(embed_dim, embed_dim, bias=config.has_bias)
        self.out_proj = nn.Linear(embed_dim, embed_dim, bias=config.has_bias)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        return x.view(*x.shape[:-1], -1, self.head_dim).transpose(1, 2)

    def forward(
        self,
        hidden_states: torch.Tensor,
        key_value_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        cache: EncoderDecoderCache | None = None,
        output_attentions: bool | None = False,
        **kwargs,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        query = self._heads(self.q_proj(hidden_states))
        layer_cache = None
        if cache is not None:
            layer_cache = cache.cross_attention_cache if self.is_cross_attention else cache.self_attention_cache
        if self.is_cross_attention and cache is not None and cache.is_updated.get(self.layer_idx):
            key = layer_cache.layers[self.layer_idx].keys
            value = layer_cache.layers[self.layer_idx].values
        else:
            source = key_value_states if self.is_cross_attention else hidden_states
            key = self._heads(self.k_proj(source))
            value = self._heads(self.v_proj(source))
            if layer_cache is not None:
                key, value = layer_cache.update(key, value, self.layer_idx)
                if self.is_cross_attention:
                    cache.is_updated[self.layer_idx] = True

        implementation = self.config._attn_implementation or "eager"
        if output_attentions:
            # Only eager attention returns weights: asking for them switches this call to eager, not to `None`s.
            implementation = "eager"
        attention_fn = ALL_ATTENTION_FUNCTIONS.get_interface(implementation, eager_attention_forward)
        rows, length = query.shape[0], query.shape[2]
        beams = rows // key.shape[0]
        if beams > 1:
            query = self._group_beams(query, beams)
            if attention_mask is not None:  # a padding mask, the same for every query of a source
                attention_mask = attention_mask[:, :, :1]
        dropout = self.dropout if self.training else 0.0
        output, weights = attention_fn(self, query, key, value, attention_mask, dropout=dropout, scaling=self.scaling)
        if beams > 1:
            output = output.reshape(rows, length, *output.shape[2:])
            if weights is not None:
                weights = weights.unflatten(2, (beams, length)).transpose(1, 2).flatten(0, 1)
        output = self.out_proj(output.reshape(*hidden_states.shape[:-1], -1))
        return output, weights

    def _group_beams(self, query: torch.Tensor, beams: int) -> torch.Tensor:
        """Cross-attention with one copy of the source per sentence (as `PaseroForConditionalGeneration.
        supports_shared_encoder_states` allows): the (B * beams, H, T, D) queries of consecutive beams become the
        queries of their sentence, (B, H, beams * T, D), so that source keys and values are neither copied per beam nor
        read once per beam."""
        if not self.is_cross_attention or query.shape[0] % beams:
            raise ValueError(
                f"{query.shape[0]} query rows for {query.shape[0] // beams} key/value rows: only cross-attention may "
                "have fewer key/value rows, and then a whole number of beams per source"
            )
        return query.unflatten(0, (-1, beams)).transpose(1, 2).flatten(2, 3)


class _PaseroLayer(PaseroAdapterLayer, GradientCheckpointingLayer):
    """What encoder and decoder layers share: the feed-forward block, norms placement and adapters."""

    def __init__(self, config: PaseroConfig, side: str, layer_idx: int):
        super().__init__()
        embed_dim = config.embed_dim
        self.prenorm = getattr(config, f"{side}_prenorm")
        self.dropout = nn.Dropout(config.dropout if side == "encoder" else config.decoder_dropout)
        self.self_attn = PaseroAttention(config, getattr(config, f"{side}_attention_heads"), layer_idx,
                                         is_causal=side == "decoder")
        self.self_attn_layer_norm = nn.LayerNorm(embed_dim, eps=config.norm_eps)
        ffn_dim = getattr(config, f"{side}_ffn_dim")
        self.fc1 = nn.Linear(embed_dim, ffn_dim, bias=config.has_bias)
        self.fc2 = nn.Linear(ffn_dim, embed_dim, bias=config.has_bias)
        self.activation = _ACTIVATIONS[config.activation_fn]()
        self.activation_dropout = nn.Dropout(config.activation_dropout)
        self.final_layer_norm = nn.LayerNorm(embed_dim, eps=config.norm_eps)
        self.init_adapters(config, side, layer_idx)

    def sublayer(self, x: torch.Tensor, norm: nn.LayerNorm, block: Callable) -> tuple[torch.Tensor, ...]:
        """Residual block with the configured norm placement; returns the new states and the block's extra outputs."""
        residual = x
        if self.prenorm:
            x = norm(x)
        x, *extra = block(x)
        x = residual + self.dropout(x)
        return (x if self.prenorm else norm(x), *extra)

    def feed_forward(self, x: torch.Tensor) -> tuple[torch.Tensor]:
        return (self.fc2(self.activation_dropout(self.activation(self.fc1(x)))),)


class PaseroEncoderLayer(_PaseroLayer):
    def __init__(self, config: PaseroConfig, layer_idx: int):
        super().__init__(config, "encoder", layer_idx)

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None,
        adapter_names: Sequence[str] = (),
        **kwargs,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The layer's output states and its self-attention weights (None unless `output_attentions`)."""
        hidden_states, weights = self.sublayer(
            hidden_states,
            self.self_attn_layer_norm,
            lambda x: self.self_attn(x, attention_mask=attention_mask, **kwargs),
        )
        (hidden_states,) = self.sublayer(hidden_states, self.final_layer_norm, self.feed_forward)
        return self.apply_adapters(hidden_states, adapter_names), weights


class PaseroDecoderLayer(_PaseroLayer):
    def __init__(self, config: PaseroConfig, layer_idx: int):
        super().__init__(config, "decoder", layer_idx)
        self.encoder_attn = PaseroAttention(config, config.decoder_attention_heads, layer_idx, is_cross_attention=True)
        self.encoder_attn_layer_norm = nn.LayerNorm(config.embed_dim, eps=config.norm_eps)

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None,
        encoder_hidden_states: torch.Tensor,
        encoder_attention_mask: torch.Tensor | None,
        cache: EncoderDecoderCache | None = None,
        adapter_names: Sequence[str] = (),
        **kwargs,
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """The layer's output states, its self- and cross-attention weights (None unless `output_attentions`)."""
        hidden_states, self_weights = self.sublayer(
            hidden_states,
            self.self_attn_layer_norm,
            lambda x: self.self_attn(x, attention_mask=attention_mask, cache=cache, **kwargs),
        )
        hidden_states, cross_weights = self.sublayer(
            hidden_states,
            self.encoder_attn_layer_norm,
            lambda x: self.encoder_attn(x, encoder_hidden_states, encoder_attention_mask, cache, **kwargs),
        )
        (hidden_states,) = self.sublayer(hidden_states, self.final_layer_norm, self.feed_forward)
        return self.apply_adapters(hidden_states, adapter_names), self_weights, cross_weights


class PaseroPreTrainedModel(PreTrainedModel):
    config: PaseroConfig
    config_class = PaseroConfig
    base_model_prefix = "model"
    supports_gradient_checkpointing = True
    _no_split_modules = ["PaseroEncoderLayer", "PaseroDecoderLayer"]
    _supports_sdpa = True
    _supports_flash_attn = False

    def _init_weights(self, module: nn.Module) -> None:
        # Pasero's initialization.
        if isinstance(module, nn.Linear) and hasattr(module, "adapter_init"):
            init_adapter_projection(module)
        elif isinstance(module, nn.Linear):
            # PyTorch's default Linear initialization, which Pasero keeps: with Xavier instead, the same training
            # run learns markedly slower per step.
            init.kaiming_uniform_(module.weight, a=math.sqrt(5))
            if module.bias is not None:
                bound = 1 / math.sqrt(module.in_features)
                init.uniform_(module.bias, -bound, bound)
        elif isinstance(module, nn.Embedding):
            init.normal_(module.weight, mean=0.0, std=module.embedding_dim**-0.5)
            if module.padding_idx is not None and not getattr(module.weight, "_is_hf_initialized", False):
                init.zeros_(module.weight[module.padding_idx])
        elif isinstance(module, nn.LayerNorm):
            init.ones_(module.weight)
            init.zeros_(module.bias)
        elif isinstance(module, PaseroSinusoidalPositions):
            init.copy_(module.weight, module.table(module.num_positions, module.embedding_dim))

    @classmethod
    def from_pretrained(cls, *args, **kwargs):
        """`PreTrainedModel.from_pretrained`, then adapters without weights in the checkpoint are removed with a
        warning (as Pasero disables them) instead of being used with random weights."""
        wants_info = kwargs.pop("output_loading_info", False)
        model, info = super().from_pretrained(*args, output_loading_info=True, **kwargs)
        missing = set(info.get("missing_keys", ()))
        for stack in (model.get_encoder(), model.get_decoder()):
            stack.drop_adapters_missing_from(missing)
        return (model, info) if wants_info else model


class _PaseroStack(PaseroAdapterStack, PaseroPreTrainedModel):
    """What the encoder and the decoder share: embeddings, positions, layers, adapter selection."""

    def __init__(self, config: PaseroConfig, side: str, embed_tokens: nn.Embedding, layer_class: type):
        super().__init__(config)
        self.side = side
        embed_dim = config.embed_dim
        self.embed_tokens = embed_tokens
        self.embed_scale = math.sqrt(embed_dim) if config.scale_embed else 1.0
        self.max_len = getattr(config, f"{side}_max_len")
        num_positions = self.max_len + config.positional_encoding_shift
        if getattr(config, f"{side}_positional_encoding") == "learned":
            self.embed_positions = PaseroLearnedPositions(num_positions, embed_dim)
        else:
            self.embed_positions = PaseroSinusoidalPositions(num_positions, embed_dim)
        self.layernorm_embedding = (
            nn.LayerNorm(embed_dim, eps=config.norm_eps) if getattr(config, f"{side}_embed_norm") else None
        )
        side_dropout = config.dropout if side == "encoder" else config.decoder_dropout
        self.dropout = nn.Dropout(config.embed_dropout if config.embed_dropout is not None else side_dropout)
        self.layers = nn.ModuleList(layer_class(config, idx) for idx in range(getattr(config, f"{side}_layers")))
        self.layer_norm = nn.LayerNorm(embed_dim, eps=config.norm_eps) if getattr(config, f"{side}_prenorm") else None
        self.active_adapters: list[str] | None = None  # None: chosen per batch / from the configuration
        self._warned_missing: set[str] = set()
        self.post_init()

    def init_parallel_plans(self) -> None:
        # `PaseroConfig.base_model_tp_plan` names the model's `encoder.`/`decoder.` modules: the model applies it
        super().init_parallel_plans()
        self._tp_plan = {}

    # -- embeddings ------------------------------------------------------------------------------------------
    def embed(
        self, input_ids: torch.LongTensor | None, inputs_embeds: torch.Tensor | None, offset: int
    ) -> torch.Tensor:
        """Scaled token embeddings (or `inputs_embeds`) plus positions from `offset`, normalized and dropped out."""
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError(f"the {self.side} needs exactly one of input_ids and inputs_embeds")
        if inputs_embeds is None:
            inputs_embeds = self.embed_tokens(input_ids)
        length = inputs_embeds.shape[1]
        if offset + length > self.max_len:
            raise ValueError(
                f"{self.side} input of {offset + length} positions exceeds PaseroConfig.{self.side}_max_len "
                f"({self.max_len})"
            )
        positions = torch.arange(offset, offset + length, device=inputs_embeds.device) + (
            self.config.positional_encoding_shift
        )
        x = inputs_embeds * self.embed_scale + self.embed_positions(positions).to(inputs_embeds.dtype)
        if self.layernorm_embedding is not None:
            x = self.layernorm_embedding(x)
        return self.dropout(x)


class PaseroEncoder(_PaseroStack):
    _can_record_outputs = {"hidden_states": PaseroEncoderLayer, "attentions": OutputRecorder(PaseroAttention, index=1)}

    def __init__(self, config: PaseroConfig, embed_tokens: nn.Embedding):
        super().__init__(config, "encoder", embed_tokens, PaseroEncoderLayer)

    @capture_outputs
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        source_lang: str | None = None,
        target_lang: str | None = None,
        domain: str | None = None,
        **kwargs,
    ) -> BaseModelOutput:
        adapters = self.resolve_adapters({"source_lang": source_lang, "target_lang": target_lang, "domain": domain})
        x = self.embed(input_ids, inputs_embeds, offset=0)
        mask = create_bidirectional_mask(config=self.config, inputs_embeds=x, attention_mask=attention_mask)
        for layer in self.layers:
            x, _ = layer(x, mask, adapter_names=adapters, **kwargs)
        return BaseModelOutput(last_hidden_state=x if self.layer_norm is None else self.layer_norm(x))


class PaseroDecoder(_PaseroStack):
    _can_record_outputs = {
        "hidden_states": PaseroDecoderLayer,
        "attentions": OutputRecorder(PaseroAttention, index=1, layer_name="self_attn"),
        "cross_attentions": OutputRecorder(PaseroAttention, index=1, layer_name="encoder_attn"),
    }

    def __init__(self, config: PaseroConfig, embed_tokens: nn.Embedding):
        super().__init__(config, "decoder", embed_tokens, PaseroDecoderLayer)

    @merge_with_config_defaults
    @capture_outputs
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        encoder_hidden_states: torch.Tensor | None = None,
        encoder_attention_mask: torch.Tensor | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        source_lang: str | None = None,
        target_lang: str | None = None,
        domain: str | None = None,
        **kwargs,
    ) -> BaseModelOutputWithPastAndCrossAttentions:
        if use_cache and cache is None:
            cache = EncoderDecoderCache(DynamicCache(), DynamicCache())
        if not use_cache:
            cache = None
        adapters = self.resolve_adapters({"source_lang": source_lang, "target_lang": target_lang, "domain": domain})
        past_length = cache.self_attention_cache.get_seq_length() if cache is not None else 0
        x = self.embed(input_ids, inputs_embeds, offset=past_length)
        if attention_mask is not None and attention_mask.shape[-1] != past_length + x.shape[1]:
            raise ValueError(
                f"decoder_attention_mask covers {attention_mask.shape[-1]} positions, expected "
                f"{past_length + x.shape[1]} ({past_length} cached + {x.shape[1]} new)"
            )
        self_cache = cache.self_attention_cache if cache is not None else None
        # Without padding, a mask is needed only for attention weights (they switch the call to eager attention,
        # which has no `is_causal`); SDPA gets `is_causal` instead, which skips the masked blocks (training).
        allow_skip = x.shape[1] == 1 or not kwargs.get("output_attentions")
        self_mask = create_causal_mask(self.config, x, attention_mask, self_cache, allow_is_causal_skip=allow_skip)
        cross_mask = create_bidirectional_mask(self.config, x, encoder_attention_mask, encoder_hidden_states)
        for layer in self.layers:
            x, *_ = layer(x, self_mask, encoder_hidden_states, cross_mask, cache=cache, adapter_names=adapters, **kwargs)
        last_hidden_state = x if self.layer_norm is None else self.layer_norm(x)
        return BaseModelOutputWithPastAndCrossAttentions(last_hidden_state=last_hidden_state, cache=cache)


class PaseroModel(PaseroAdapterControls, PaseroPreTrainedModel):
    """The bare Pasero encoder-decoder, returning the decoder's last hidden states."""

    def __init__(self, config: PaseroConfig):
        super().__init__(config)
        encoder_vocab = config.encoder_vocab_size or config.vocab_size
        encoder_embed = nn.Embedding(encoder_vocab, config.embed_dim, config.pad_token_id)
        decoder_embed = nn.Embedding(config.vocab_size, config.embed_dim, config.pad_token_id)
        self.encoder = PaseroEncoder(config, encoder_embed)
        self.decoder = PaseroDecoder(config, decoder_embed)
        self._tied_weights_keys = (
            {"decoder.embed_tokens.weight": "encoder.embed_tokens.weight"} if config.shared_embeddings else {}
        )
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.encoder.embed_tokens

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.encoder.embed_tokens = value
        if self.config.shared_embeddings:
            self.decoder.embed_tokens = value

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        decoder_input_ids: torch.LongTensor | None = None,
        decoder_attention_mask: torch.Tensor | None = None,
        encoder_outputs: BaseModelOutput | tuple | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        decoder_inputs_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        source_lang: str | None = None,
        target_lang: str | None = None,
        domain: str | None = None,
        **kwargs,
    ) -> Seq2SeqModelOutput:
        """Standard seq2seq forward. `source_lang`, `target_lang` and `domain` select adapters per batch (see
        `PaseroConfig.encoder_adapters_by`); they are ignored by models without adapters."""
        kwargs.update(source_lang=source_lang, target_lang=target_lang, domain=domain)
        if encoder_outputs is None:
            encoder_outputs = self.encoder(
                input_ids=input_ids, attention_mask=attention_mask, inputs_embeds=inputs_embeds, **kwargs
            )
        elif not isinstance(encoder_outputs, BaseModelOutput):
            encoder_outputs = BaseModelOutput(
                last_hidden_state=encoder_outputs[0],
                hidden_states=encoder_outputs[1] if len(encoder_outputs) > 1 else None,
                attentions=encoder_outputs[2] if len(encoder_outputs) > 2 else None,
            )
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
        return Seq2SeqModelOutput(
            last_hidden_state=decoder_outputs.last_hidden_state,
            cache=decoder_outputs.cache,
            decoder_hidden_states=decoder_outputs.hidden_states,
            decoder_attentions=decoder_outputs.attentions,
            cross_attentions=decoder_outputs.cross_attentions,
            encoder_last_hidden_state=encoder_outputs.last_hidden_state,
            encoder_hidden_states=encoder_outputs.hidden_states,
            encoder_attentions=encoder_outputs.attentions,
        )


class PaseroForConditionalGeneration(PaseroAdapterControls, PaseroPreTrainedModel, GenerationMixin):
    """Pasero encoder-decoder with its output projection, for training (cross-entropy on `labels`) and `generate`."""

    # The decoder accepts encoder states (and source mask) with one row per sentence for decoder inputs with several
    # consecutive rows (beams) per sentence: beam search then keeps one copy of the source per sentence.
    supports_shared_encoder_states = True

    def __init__(self, config: PaseroConfig):
        super().__init__(config)
        self.model = PaseroModel(config)
        self.lm_head = nn.Linear(config.embed_dim, config.vocab_size, bias=False)
        if config.tied_output_projection:
            source = "encoder" if config.shared_embeddings else "decoder"
            self._tied_weights_keys = {"lm_head.weight": f"model.{source}.embed_tokens.weight"}
        else:
            self._tied_weights_keys = {}
        self.post_init()

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        decoder_input_ids: torch.LongTensor | None = None,
        decoder_attention_mask: torch.Tensor | None = None,
        encoder_outputs: BaseModelOutput | tuple | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        decoder_inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        source_lang: str | None = None,
        target_lang: str | None = None,
        domain: str | None = None,
        num_items_in_batch: torch.Tensor | int | None = None,
        **kwargs,
    ) -> Seq2SeqLMOutput:
        """Standard seq2seq forward. `labels` (-100 = ignored) give a mean token cross-entropy `loss` (no label
        smoothing: trainers apply it from the logits), over `num_items_in_batch` tokens when `Trainer` passes it.
        `source_lang`, `target_lang` and `domain` select adapters."""
        if labels is not None:
            use_cache = False  # teacher forcing never reuses the cache: don't build one
            if decoder_input_ids is None and decoder_inputs_embeds is None:
                decoder_input_ids = shift_tokens_right(
                    labels, self.config.pad_token_id, self.config.decoder_start_token_id
                )
        outputs = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            decoder_input_ids=decoder_input_ids,
            decoder_attention_mask=decoder_attention_mask,
            encoder_outputs=encoder_outputs,
            cache=cache,
            inputs_embeds=inputs_embeds,
            decoder_inputs_embeds=decoder_inputs_embeds,
            use_cache=use_cache,
            source_lang=source_lang,
            target_lang=target_lang,
            domain=domain,
            **kwargs,
        )
        logits = self.lm_head(outputs.last_hidden_state)
        loss = None
        if labels is not None:
            # `Trainer` passes the token count of the whole accumulated batch, so that gradient accumulation and
            # data parallelism average over tokens rather than over micro-batches
            if num_items_in_batch is None:
                num_items_in_batch = (labels != -100).sum()
            loss = fixed_cross_entropy(
                logits.float().reshape(-1, logits.shape[-1]), labels.to(logits.device).reshape(-1), num_items_in_batch
            )
        return Seq2SeqLMOutput(
            loss=loss,
            logits=logits,
            cache=outputs.cache,
            decoder_hidden_states=outputs.decoder_hidden_states,
            decoder_attentions=outputs.decoder_attentions,
            cross_attentions=outputs.cross_attentions,
            encoder_last_hidden_state=outputs.encoder_last_hidden_state,
            encoder_hidden_states=outputs.encoder_hidden_states,
            encoder_attentions=outputs.encoder_attentions,
        )


__all__ = ["PaseroPreTrainedModel", "PaseroModel", "PaseroForConditionalGeneration", "shift_tokens_right"]
