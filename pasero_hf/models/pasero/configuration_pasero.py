"""Configuration of the Pasero Transformer (fairseq-style encoder-decoder) for Hugging Face `transformers`.

Self-contained (imports only `transformers` and the standard library) so that `save_pretrained` can copy it next to
the weights for `trust_remote_code=True` loading.
"""

import dataclasses
import difflib
import re

from huggingface_hub.dataclasses import strict
from transformers import PreTrainedConfig

# Architecture presets: Pasero's named architectures, as overrides of the `transformer` (Transformer Base) defaults.
_TRANSFORMER_BIG = {
    "embed_dim": 1024,
    "encoder_ffn_dim": 4096,
    "decoder_ffn_dim": 4096,
    "encoder_attention_heads": 16,
    "decoder_attention_heads": 16,
}
_NLLB_600M = {**_TRANSFORMER_BIG, "encoder_layers": 12, "decoder_layers": 12, "encoder_prenorm": True,
              "decoder_prenorm": True}
_NLLB_1B3 = {**_NLLB_600M, "encoder_layers": 24, "decoder_layers": 24, "encoder_ffn_dim": 8192,
             "decoder_ffn_dim": 8192}
ARCHITECTURES: dict[str, dict] = {
    "transformer": {},
    "transformer_base": {},
    "transformer_small": {"encoder_ffn_dim": 1024, "decoder_ffn_dim": 1024, "encoder_attention_heads": 4,
                          "decoder_attention_heads": 4},
    "transformer_big": _TRANSFORMER_BIG,
    "transformer_wide": {**_TRANSFORMER_BIG, "encoder_ffn_dim": 8192, "decoder_ffn_dim": 8192},
    "mbart_large": {**_TRANSFORMER_BIG, "encoder_layers": 12, "decoder_layers": 12, "encoder_embed_norm": True,
                    "decoder_embed_norm": True, "encoder_positional_encoding": "learned",
                    "decoder_positional_encoding": "learned", "encoder_prenorm": True, "decoder_prenorm": True,
                    "encoder_max_len": 1024, "decoder_max_len": 1024},
    "nllb_600m": _NLLB_600M,
    "nllb_1b3": _NLLB_1B3,
    "nllb_3b3": {**_NLLB_1B3, "embed_dim": 2048},
    "adapter_transformer": {"encoder_adapter_dim": 64, "decoder_adapter_dim": 64},
}
ARCHITECTURES["transformer_iwslt_de_en"] = ARCHITECTURES["transformer_small"]
ARCHITECTURES["transformer_wmt_en_de_big"] = ARCHITECTURES["transformer_big"]
ARCHITECTURES["transformer_vaswani_wmt_en_de_big"] = ARCHITECTURES["transformer_big"]

ACTIVATIONS = ("relu", "gelu", "gelu_tanh")
POSITIONAL_ENCODINGS = ("sinusoidal", "learned")
ADAPTERS_BY_KEYS = ("source_lang", "target_lang", "domain", "lang_pair")

# `default`, `lang:fr`, `lang:de->fr`, `domain:ted`. No dots: the name is a module name inside the state dict.
_ADAPTER_NAME = re.compile(r"default|lang:[\w\-]+(->[\w\-]+)?|domain:[\w\-]+")


def check_adapter_name(name: str, where: str) -> None:
    """Raise a `ValueError` naming `where` the name comes from when `name` is not a valid adapter name."""
    if not isinstance(name, str) or not _ADAPTER_NAME.fullmatch(name):
        raise ValueError(
            f"{where}: invalid adapter name {name!r}; expected 'default', 'lang:CODE', 'lang:SRC->TGT' or "
            "'domain:NAME' (letters, digits, '_' and '-' only)"
        )


def adapter_name(key: str, *values: str) -> str:
    """The adapter an `*_adapters_by` key selects for a batch: `source_lang`/`target_lang` -> 'lang:CODE',
    `lang_pair` (source then target values) -> 'lang:SRC->TGT', `domain` -> 'domain:NAME'."""
    if key == "domain":
        return f"domain:{values[0]}"
    return "lang:" + "->".join(values)


@strict
class PaseroConfig(PreTrainedConfig):
    r"""
    Configuration of a Pasero Transformer: a fairseq-style encoder-decoder Transformer as trained by Pasero
    (`transformer*` and `adapter_transformer` architectures). Option names are Pasero's.

    Args:
        vocab_size: size of the target (decoder) vocabulary, and of the source one unless `encoder_vocab_size` is set.
        encoder_vocab_size: size of the source vocabulary when it differs (requires `shared_embeddings=False`).
        embed_dim: model dimension (`hidden_size`, `d_model`).
        encoder_layers / decoder_layers: number of layers.
        encoder_attention_heads / decoder_attention_heads: number of attention heads (must divide `embed_dim`).
        encoder_ffn_dim / decoder_ffn_dim: inner dimension of the feed-forward blocks.
        encoder_prenorm / decoder_prenorm: layer norm before each block (and a final layer norm) instead of after.
        encoder_embed_norm / decoder_embed_norm: layer norm on the (scaled, position-added) embeddings.
        activation_fn: 'relu', 'gelu' (exact) or 'gelu_tanh'.
        dropout / decoder_dropout / embed_dropout: residual dropout; the decoder's and the embeddings' default to it.
        attention_dropout / activation_dropout: dropout on attention weights / after the FFN activation.
        scale_embed: multiply token embeddings by sqrt(embed_dim).
        shared_embeddings: the encoder and decoder share one embedding matrix.
        tied_output_projection: the output projection is the decoder embedding matrix.
        encoder_positional_encoding / decoder_positional_encoding: 'sinusoidal' or 'learned'.
        positional_encoding_shift: index of the first position (2 in fairseq and Pasero: padding_idx + 1).
        encoder_max_len / decoder_max_len: maximum number of positions.
        norm_eps: layer norm epsilon.
        has_bias: biases in the linear layers; attention_key_bias: bias in the key projections.
        scale_attn: scale attention scores by 1/sqrt(head_dim).
        encoder_adapter_dim / decoder_adapter_dim: bottleneck size of the adapters (0: no adapters).
        encoder_adapter_layer_ids / decoder_adapter_layer_ids: layers that get adapters (None: all).
        encoder_adapters / decoder_adapters: names of the adapters in the model (None: ['default'] unless
            `*_adapters_by` is set, then none until added).
        encoder_adapters_by / decoder_adapters_by: select adapters per batch from its 'source_lang', 'target_lang',
            'domain' or 'lang_pair' ('lang:SRC->TGT'), in this order.
        adapter_zero_init: initialize adapters as the identity (zero up-projection) instead of near-zero weights.

    `tie_word_embeddings` is derived from `shared_embeddings` and `tied_output_projection` (which decide the tying).
    HF aliases: `hidden_size`/`d_model` = embed_dim; `num_hidden_layers`/`num_attention_heads` = the decoder's.
    """

    model_type = "pasero"
    attribute_map = {
        "hidden_size": "embed_dim",
        "d_model": "embed_dim",
        "num_attention_heads": "decoder_attention_heads",
        # the generation cache is sized from `num_hidden_layers`: it must be the decoder's
        "num_hidden_layers": "decoder_layers",
        "activation_function": "activation_fn",
    }
    # Megatron-style tensor parallelism: q/k/v and fc1 split by output features, out_proj and fc2 by input features.
    base_model_tp_plan = {
        f"{stack}.layers.*.{module}": plan
        for stack in ("encoder", "decoder")
        for attention in (("self_attn", "encoder_attn") if stack == "decoder" else ("self_attn",))
        for module, plan in (
            (f"{attention}.q_proj", "colwise"),
            (f"{attention}.k_proj", "colwise"),
            (f"{attention}.v_proj", "colwise"),
            (f"{attention}.out_proj", "rowwise"),
        )
    } | {f"{stack}.layers.*.fc1": "colwise" for stack in ("encoder", "decoder")} | {
        f"{stack}.layers.*.fc2": "rowwise" for stack in ("encoder", "decoder")
    }
    keys_to_ignore_at_inference = ["cache"]

    vocab_size: int = 32000
    encoder_vocab_size: int | None = None
    embed_dim: int = 512
    encoder_layers: int = 6
    decoder_layers: int = 6
    encoder_attention_heads: int = 8
    decoder_attention_heads: int = 8
    encoder_ffn_dim: int = 2048
    decoder_ffn_dim: int = 2048
    encoder_prenorm: bool = False
    decoder_prenorm: bool = False
    encoder_embed_norm: bool = False
    decoder_embed_norm: bool = False
    activation_fn: str = "relu"
    dropout: float | int = 0.1
    decoder_dropout: float | int | None = None
    embed_dropout: float | int | None = None
    attention_dropout: float | int = 0.0
    activation_dropout: float | int = 0.0
    scale_embed: bool = True
    shared_embeddings: bool = True
    tied_output_projection: bool = True
    encoder_positional_encoding: str = "sinusoidal"
    decoder_positional_encoding: str = "sinusoidal"
    positional_encoding_shift: int = 2
    encoder_max_len: int = 256
    decoder_max_len: int = 256
    norm_eps: float = 1e-5
    has_bias: bool = True
    attention_key_bias: bool = True
    scale_attn: bool = True
    encoder_adapter_dim: int = 0
    decoder_adapter_dim: int = 0
    encoder_adapter_layer_ids: list[int] | None = None
    decoder_adapter_layer_ids: list[int] | None = None
    encoder_adapters: list[str] | None = None
    decoder_adapters: list[str] | None = None
    encoder_adapters_by: list[str] | None = None
    decoder_adapters_by: list[str] | None = None
    adapter_zero_init: bool = False
    use_cache: bool = True
    is_encoder_decoder: bool = True
    pad_token_id: int | None = 1
    bos_token_id: int | None = 0
    eos_token_id: int | list[int] | None = 2
    unk_token_id: int | None = 3
    decoder_start_token_id: int | None = 2
    tie_word_embeddings: bool = True

    def __post_init__(self, **kwargs):
        # Resolved here rather than at use: transformers' `get_text_config(decoder=True)` copies every `decoder_*`
        # option over its unprefixed twin (decoder_dropout -> dropout), so it must never be None.
        if self.decoder_dropout is None:
            self.decoder_dropout = self.dropout
        self.encoder_adapters_by = list(self.encoder_adapters_by or [])
        self.decoder_adapters_by = list(self.decoder_adapters_by or [])
        for side in ("encoder", "decoder"):
            names = getattr(self, f"{side}_adapters")
            if names is None and getattr(self, f"{side}_adapter_dim") and not getattr(self, f"{side}_adapters_by"):
                setattr(self, f"{side}_adapters", ["default"])
        # Tying is decided by the Pasero options; `tie_word_embeddings` only tells transformers that some tying exists.
        self.tie_word_embeddings = bool(self.shared_embeddings or self.tied_output_projection)
        super().__post_init__(**kwargs)

    def validate_architecture(self):
        """Reject option values the model cannot implement, naming the option."""
        for side in ("encoder", "decoder"):
            heads = getattr(self, f"{side}_attention_heads")
            if heads <= 0 or self.embed_dim % heads:
                raise ValueError(
                    f"PaseroConfig: embed_dim ({self.embed_dim}) must be divisible by {side}_attention_heads ({heads})"
                )
            encoding = getattr(self, f"{side}_positional_encoding")
            if encoding not in POSITIONAL_ENCODINGS:
                raise ValueError(
                    f"PaseroConfig: unsupported {side}_positional_encoding {encoding!r}; expected one of "
                    f"{POSITIONAL_ENCODINGS}"
                )
            for key in getattr(self, f"{side}_adapters_by"):
                if key not in ADAPTERS_BY_KEYS:
                    raise ValueError(
                        f"PaseroConfig: {side}_adapters_by contains {key!r}; expected some of {ADAPTERS_BY_KEYS}"
                    )
            for name in getattr(self, f"{side}_adapters") or []:
                check_adapter_name(name, f"PaseroConfig.{side}_adapters")
            num_layers = getattr(self, f"{side}_layers")
            for layer_id in getattr(self, f"{side}_adapter_layer_ids") or []:
                if not 0 <= layer_id < num_layers:
                    raise ValueError(
                        f"PaseroConfig: {side}_adapter_layer_ids contains {layer_id}, but the {side} has "
                        f"{num_layers} layers"
                    )
        if self.activation_fn not in ACTIVATIONS:
            raise ValueError(f"PaseroConfig: unsupported activation_fn {self.activation_fn!r}; expected one of "
                             f"{ACTIVATIONS}")
        if self.encoder_vocab_size not in (None, self.vocab_size) and self.shared_embeddings:
            raise ValueError(
                f"PaseroConfig: shared_embeddings=True needs one vocabulary, but encoder_vocab_size "
                f"({self.encoder_vocab_size}) != vocab_size ({self.vocab_size})"
            )

    @classmethod
    def from_arch(cls, name: str, **overrides) -> "PaseroConfig":
        """Build the configuration of one of Pasero's named architectures (e.g. 'transformer_big'), with overrides."""
        if name not in ARCHITECTURES:
            raise ValueError(f"unknown Pasero architecture {name!r}; known: {', '.join(sorted(ARCHITECTURES))}")
        cls.check_option_names(overrides)
        return cls(**{**ARCHITECTURES[name], **overrides})

    @classmethod
    def check_option_names(cls, options) -> None:
        """Raise ValueError on names that are not options of this config, with the closest valid ones.

        `PaseroConfig(**kwargs)` keeps unknown keys as attributes (as every transformers config does, so that
        configs written by other versions load), which would silently train with the default of a misspelled option.
        """
        known = {f.name for f in dataclasses.fields(cls)} | set(cls.attribute_map) | {"output_attentions"}
        for key in options:
            if key not in known:
                close = difflib.get_close_matches(key, sorted(known), n=3, cutoff=0.6)
                hint = f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""
                raise ValueError(f"unknown model option {key!r}{hint}")


__all__ = ["PaseroConfig", "ARCHITECTURES", "check_adapter_name"]
