"""Export to CTranslate2: a model directory that `ctranslate2.Translator` loads, plus our tokenizer files,
`generation_config.json`, `inference.yaml` and `pasero_export.json`, so that `TextGenerator.from_pretrained(OUT)`
decodes it with the same API, options and output format as the PyTorch model.

```python
from pasero_hf.export import export_ctranslate2

export_ctranslate2("models/tiny-en-es", "models/tiny-en-es-ct2", quantization="int8")
```

The `TransformerSpec` is filled directly from our modules (no round trip through another model class):
- Pasero Transformers, pre-norm or post-norm (each side on its own), shared or separate embeddings, tied or separate
  output projection, sinusoidal or learned positions, layer norm on embeddings, relu/gelu, biases or none;
  Hugging Face M2M100/NLLB dense models (pre-norm, the same layer names).
- Positions: the table is written explicitly, rows from the model's first position (Pasero and fairseq start at
  index 2, after the padding index; CTranslate2's built-in sinusoids would start at 1 and differ).
- Pasero bottleneck adapters are a fixed stack chosen at export time (`encoder_adapters`/`decoder_adapters`, or the
  languages and domain that `*_adapters_by` selects from). In a pre-norm stack, an adapter
  `x + up(relu(down(norm(x))))` is exactly a pre-norm layer whose attention outputs are zero and whose feed-forward
  block is the adapter: each one becomes such a layer, after the layer it follows. Post-norm layers would normalise
  after the residual, which the adapter does not do: such models are refused (decode them with PyTorch).
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import yaml

from pasero_hf.models.locate import resolve_model_dir
from pasero_hf.tokenization.file_utils import atomic_directory

logger = logging.getLogger(__name__)

EXPORT_FILE = "pasero_export.json"
# What `quantization` accepts: the weight types CTranslate2 stores (float32: no quantization).
QUANTIZATIONS = ("float32", "int8", "int8_float32", "int8_float16", "int8_bfloat16", "int16", "float16", "bfloat16")
_SUPPORTED_TYPES = ("pasero", "m2m_100")
_MOE_TYPES = ("nllb_moe", "pasero_nllb_moe", "switch_transformers")
_WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")
_ORIGINAL_CHECKPOINT = "model_best.bin"
_M2M100_MIN_POSITIONS = 1024


class ExportError(ValueError):
    """A model that cannot be exported, or an export request that cannot be met; the message says what to do."""


def is_ctranslate2_export(path: str | os.PathLike) -> bool:
    """Whether `path` is a directory written by `export_ctranslate2`."""
    marker = Path(path) / EXPORT_FILE
    if not marker.is_file():
        return False
    try:
        return json.loads(marker.read_text(encoding="utf-8")).get("format") == "ctranslate2"
    except json.JSONDecodeError:
        return False


def read_export_info(path: str | os.PathLike) -> dict[str, Any]:
    """The `pasero_export.json` of an export (format, quantization, the model's configuration, adapters...)."""
    marker = Path(path) / EXPORT_FILE
    try:
        return json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise ExportError(f"{marker}: not a readable export description ({error})") from error


def import_ctranslate2():
    """The `ctranslate2` module, or an ExportError saying how to install it."""
    try:
        import ctranslate2
    except ImportError as error:
        raise ExportError(
            "CTranslate2 is not installed: `pip install ctranslate2` (or `pip install 'pasero-hf[ctranslate2]'`)"
        ) from error
    return ctranslate2


def export_ctranslate2(
    model_dir: str | os.PathLike,
    output_dir: str | os.PathLike,
    *,
    quantization: str | None = None,
    overwrite: bool = False,
    source_lang: str | None = None,
    target_lang: str | None = None,
    domain: str | None = None,
    encoder_adapters: Sequence[str] | None = None,
    decoder_adapters: Sequence[str] | None = None,
) -> Path:
    """Export the model of `model_dir` to a CTranslate2 directory `output_dir` (written atomically); returns it.

    `model_dir` is a Hugging Face model directory (a converted or trained Pasero model, M2M100/NLLB) or an original
    Pasero model directory (converted on the fly). `quantization`: one of `QUANTIZATIONS` (default float32).
    `source_lang`/`target_lang`/`domain` choose the adapters of a model with `*_adapters_by`; `encoder_adapters`/
    `decoder_adapters` name the stack explicitly ([] for none). Raises ExportError (or FileNotFoundError /
    FileExistsError) with what to do; nothing is left at `output_dir` then.
    """
    quantization = quantization or "float32"
    if quantization not in QUANTIZATIONS:
        raise ExportError(f"unknown quantization {quantization!r}: expected one of {', '.join(QUANTIZATIONS)}")
    ctranslate2 = import_ctranslate2()
    output_dir = Path(output_dir)
    if output_dir.exists() and not output_dir.is_dir():
        raise FileExistsError(f"output path {output_dir} exists and is not a directory")
    if output_dir.exists() and any(output_dir.iterdir()) and not overwrite:
        raise FileExistsError(f"output directory {output_dir} exists and is not empty (use overwrite=True / --force)")

    model, tokenizer, inference = _load(Path(model_dir))
    selectors = {"source_lang": source_lang, "target_lang": target_lang, "domain": domain}
    adapters = _adapter_stack(model, selectors, encoder_adapters, decoder_adapters)
    spec = _transformer_spec(ctranslate2, model, tokenizer, adapters)
    spec.validate()
    spec.optimize(quantization=quantization)

    with atomic_directory(output_dir) as staging:
        spec.save(str(staging))
        tokenizer.save_pretrained(staging)
        model.generation_config.save_pretrained(staging)
        _write_inference_yaml(staging / "inference.yaml", inference, tokenizer if model.config.model_type == "pasero"
                              else None, selectors)
        info = {
            "format": "ctranslate2",
            "quantization": quantization,
            "ctranslate2_version": ctranslate2.__version__,
            "source": str(model_dir),
            "model_config": model.config.to_dict(),
            "adapters": adapters,
        }
        (staging / EXPORT_FILE).write_text(json.dumps(info, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    logger.info("exported %s -> %s (CTranslate2, %s)", model_dir, output_dir, quantization)
    return output_dir


# ---------------------------------------------------------------------------------------------------------------------
# Loading


def _load(model_dir: Path):
    """(model, tokenizer, inference.yaml options) of a Hugging Face or original Pasero model directory."""
    if model_dir.is_dir() and not (model_dir / "config.json").is_file() and (model_dir / "inference.yaml").is_file():
        return _load_original_pasero(model_dir)
    model_dir = resolve_model_dir(model_dir)
    if not any((model_dir / name).is_file() for name in _WEIGHT_FILES):
        raise ExportError(
            f"{model_dir} has no weights (looked for {', '.join(_WEIGHT_FILES)}): export a directory written by "
            "save_pretrained, pasero-convert or training (model_best/, model_last/)"
        )
    from transformers import AutoConfig, AutoModelForSeq2SeqLM, AutoTokenizer

    import pasero_hf

    pasero_hf.register()  # our model types in the Auto classes

    config = AutoConfig.from_pretrained(model_dir)
    _check_model_type(config.model_type, model_dir)
    model = AutoModelForSeq2SeqLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    inference_path = model_dir / "inference.yaml"
    inference = yaml.safe_load(inference_path.read_text(encoding="utf-8")) if inference_path.is_file() else {}
    return model, tokenizer, inference or {}


def _load_original_pasero(model_dir: Path):
    from pasero_hf.models.pasero.convert_pasero_checkpoint import build_tokenizer, load_pasero_model

    if not (model_dir / _ORIGINAL_CHECKPOINT).is_file():
        raise ExportError(f"{model_dir} has no weights: {model_dir / _ORIGINAL_CHECKPOINT} not found")
    model, _, options = load_pasero_model(model_dir, _ORIGINAL_CHECKPOINT)
    tokenizer = build_tokenizer(model_dir, options)
    inference_path = model_dir / "inference.yaml"
    inference = yaml.safe_load(inference_path.read_text(encoding="utf-8")) or {}
    return model, tokenizer, inference


def _check_model_type(model_type: str, model_dir: Path) -> None:
    if model_type in _MOE_TYPES:
        raise ExportError(
            f"{model_dir}: {model_type} is a Mixture-of-Experts model, which CTranslate2's Transformer cannot "
            "represent; decode it with the PyTorch backend (TextGenerator / pasero-decode without --backend)"
        )
    if model_type not in _SUPPORTED_TYPES:
        raise ExportError(
            f"{model_dir}: model type {model_type!r} cannot be exported to CTranslate2 by pasero-export "
            f"(supported: {', '.join(_SUPPORTED_TYPES)}); decode it with the PyTorch backend"
        )


# ---------------------------------------------------------------------------------------------------------------------
# Adapters


def _adapter_stack(model, selectors, encoder_adapters, decoder_adapters) -> dict[str, list[str]]:
    """The adapters each side applies, fixed for the export ({} sides for models without adapters)."""
    if model.config.model_type != "pasero":
        if encoder_adapters or decoder_adapters:
            raise ExportError(f"{model.config.model_type} models have no adapters to select")
        return {"encoder": [], "decoder": []}
    base = model.get_encoder(), model.get_decoder()
    stacks = {}
    for stack, explicit in zip(base, (encoder_adapters, decoder_adapters)):
        available = stack.adapter_names()
        if explicit is not None:
            missing = [name for name in explicit if name not in available]
            if missing:
                raise ExportError(
                    f"{stack.side} adapters {missing} have no weights in this model "
                    f"(available: {', '.join(available) or 'none'})"
                )
            stacks[stack.side] = list(explicit)
            continue
        try:
            stacks[stack.side] = stack.resolve_adapters(selectors) if available else []
        except ValueError as error:
            raise ExportError(
                f"this model picks its {stack.side} adapters per input ({error}); CTranslate2 needs a fixed stack: "
                "give the languages/domain to export for (--source-lang/--target-lang/--domain) or name the "
                "adapters (--encoder-adapters/--decoder-adapters)"
            ) from error
    for stack in base:
        if stacks[stack.side] and not getattr(model.config, f"{stack.side}_prenorm"):
            raise ExportError(
                f"the {stack.side} is post-norm and has adapters {stacks[stack.side]}: a bottleneck adapter "
                "(LayerNorm, ReLU) cannot be merged into post-norm Transformer layers, and CTranslate2 has no adapter "
                f"layer; decode this model with the PyTorch backend, or export without {stack.side} adapters "
                f"(--{stack.side}-adapters with no names)"
            )
        if stacks[stack.side] and model.config.norm_eps != 1e-5:
            raise ExportError(f"adapters need norm_eps 1e-5 (their layer norms'), this model has {model.config.norm_eps}")
    return stacks


# ---------------------------------------------------------------------------------------------------------------------
# The specification


def _transformer_spec(ctranslate2, model, tokenizer, adapters: dict[str, list[str]]):
    from ctranslate2.specs import common_spec, transformer_spec

    config = model.config
    if config.model_type == "pasero":
        activation = config.activation_fn
        pre_norm = config.encoder_prenorm, config.decoder_prenorm
        embed_norm = config.encoder_embed_norm, config.decoder_embed_norm
        heads = config.encoder_attention_heads, config.decoder_attention_heads
        eps = config.norm_eps
        scale_attn = config.scale_attn
    else:  # M2M100 / NLLB dense: pre-norm, final layer norms, no embedding norm
        activation = config.activation_function
        pre_norm, embed_norm = (True, True), (False, False)
        heads = config.encoder_attention_heads, config.decoder_attention_heads
        eps, scale_attn = 1e-5, True
    activations = {"relu": common_spec.Activation.RELU, "gelu": common_spec.Activation.GELU,
                   "gelu_tanh": common_spec.Activation.GELUTanh, "gelu_new": common_spec.Activation.GELUTanh}
    if activation not in activations:
        raise ExportError(f"activation {activation!r} has no CTranslate2 equivalent (supported: {sorted(activations)})")

    encoder, decoder = model.get_encoder(), model.get_decoder()
    enc_layers = _layer_plan(encoder, adapters["encoder"])
    dec_layers = _layer_plan(decoder, adapters["decoder"])
    real_decoder_layers = [index for index, (kind, _) in enumerate(dec_layers) if kind == "layer"]
    encoder_spec = transformer_spec.TransformerEncoderSpec(
        len(enc_layers), heads[0], pre_norm=pre_norm[0], activation=activations[activation],
        layernorm_embedding=embed_norm[0],
    )
    decoder_spec = transformer_spec.TransformerDecoderSpec(
        len(dec_layers), heads[1], pre_norm=pre_norm[1], activation=activations[activation],
        layernorm_embedding=embed_norm[1],
        # verbose outputs align with the last real layer's cross-attention, averaged over all heads
        alignment_layer=real_decoder_layers[-1], alignment_heads=0,
    )
    _fill_stack(encoder_spec, encoder, enc_layers, scale_attn)
    _fill_stack(decoder_spec, decoder, dec_layers, scale_attn)
    tied = config.model_type != "pasero" or config.tied_output_projection
    output = decoder.embed_tokens.weight if tied else model.get_output_embeddings().weight
    decoder_spec.projection.weight = output.detach().float()

    spec = transformer_spec.TransformerSpec(encoder_spec, decoder_spec)
    spec.config.layer_norm_epsilon = eps
    spec.config.add_source_bos = False  # sources arrive as our tokenizer's full sequences (codes, </s>)
    spec.config.add_source_eos = False
    spec.config.bos_token = tokenizer.bos_token or "<s>"
    spec.config.eos_token = tokenizer.eos_token
    spec.config.unk_token = tokenizer.unk_token or "<unk>"
    start = config.decoder_start_token_id
    spec.config.decoder_start_token = tokenizer.convert_ids_to_tokens(start)
    source_vocab = export_vocabulary(tokenizer, encoder.embed_tokens.weight.shape[0])
    target_vocab = export_vocabulary(tokenizer, decoder.embed_tokens.weight.shape[0], target=True)
    spec.register_source_vocabulary(source_vocab)
    spec.register_target_vocabulary(target_vocab)
    return spec


def export_vocabulary(tokenizer, size: int, target: bool = False) -> list[str]:
    """The token string of each id below `size`, unique (CTranslate2 maps strings to ids): ids the tokenizer does not
    know (embedding rows padded to a multiple of 8) and duplicates get placeholder names. `target`: the decoder's
    vocabulary, which differs from the encoder's with a Pasero tokenizer's target dictionary (`separate_vocabs`)."""
    tokens, seen = [], set()
    known, side = len(tokenizer), {}
    if getattr(tokenizer, "separate_vocabs", False):
        known = tokenizer.target_vocab_size if target else tokenizer.vocab_size
        side = {"use_source_tokenizer": not target}
    for index in range(size):
        token = tokenizer.convert_ids_to_tokens(index, **side) if index < known else None
        if token is None or token in seen:
            token = f"<pasero_hf:unused:{index}>"
        seen.add(token)
        tokens.append(token)
    return tokens


def _layer_plan(stack, adapter_names: list[str]) -> list[tuple[str, Any]]:
    """The CTranslate2 layers of a stack: each of our layers, then the adapters of the stack that it holds."""
    plan = []
    for layer in stack.layers:
        plan.append(("layer", layer))
        adapters = getattr(layer, "adapters", {})
        plan += [("adapter", adapters[name]) for name in adapter_names if name in adapters]
    return plan


def _fill_stack(spec, stack, plan, scale_attn: bool) -> None:
    embed_scale = float(getattr(stack, "embed_scale", None) or getattr(stack.embed_tokens, "embed_scale", 1.0))
    dim = stack.embed_tokens.weight.shape[1]
    if math.isclose(embed_scale, math.sqrt(dim)):
        spec.scale_embeddings = True
    elif embed_scale == 1.0:
        spec.scale_embeddings = False
    else:
        raise ExportError(f"embedding scale {embed_scale} is neither 1 nor sqrt({dim}): CTranslate2 cannot apply it")
    embeddings = spec.embeddings[0] if isinstance(spec.embeddings, list) else spec.embeddings
    embeddings.weight = stack.embed_tokens.weight.detach().float()
    spec.position_encodings.encodings = _positions(stack)
    if getattr(stack, "layernorm_embedding", None) is not None:
        _norm(spec.layernorm_embedding, stack.layernorm_embedding)
    if getattr(stack, "layer_norm", None) is not None:
        _norm(spec.layer_norm, stack.layer_norm)
    for layer_spec, (kind, module) in zip(spec.layer, plan):
        cross = getattr(layer_spec, "attention", None)
        if kind == "adapter":
            _zero_attention(layer_spec.self_attention, dim, fused_qkv=True)
            if cross is not None:
                _zero_attention(cross, dim, fused_qkv=False)
            _norm(layer_spec.ffn.layer_norm, module.layer_norm)
            _linear(layer_spec.ffn.linear_0, module.down)
            _linear(layer_spec.ffn.linear_1, module.up)
            continue
        _attention(layer_spec.self_attention, module.self_attn, module.self_attn_layer_norm, scale_attn, self_attn=True)
        if cross is not None:
            _attention(cross, module.encoder_attn, module.encoder_attn_layer_norm, scale_attn, self_attn=False)
        _norm(layer_spec.ffn.layer_norm, module.final_layer_norm)
        _linear(layer_spec.ffn.linear_0, module.fc1)
        _linear(layer_spec.ffn.linear_1, module.fc2)


def _positions(stack) -> torch.Tensor:
    """Position rows from the model's first position: Pasero/fairseq index positions from 2 (padding index + 1)."""
    positions = stack.embed_positions
    if hasattr(positions, "offset") and hasattr(positions, "get_embedding"):  # M2M100
        # transformers extends M2M100's sinusoids past max_position_embeddings on demand; the table must be long
        rows = max(positions.num_positions, _M2M100_MIN_POSITIONS) + positions.offset
        table = positions.get_embedding(rows, positions.embedding_dim, positions.padding_idx)
        offset = positions.offset
    else:  # Pasero: sinusoidal (buffer) or learned (parameter) table, shifted
        table, offset = positions.weight, stack.config.positional_encoding_shift
    return table[offset:].detach().float().clone()


def _norm(spec, norm) -> None:
    spec.gamma = norm.weight.detach().float()
    spec.beta = norm.bias.detach().float()


def _linear(spec, linear, weight=None, bias=None) -> None:
    spec.weight = (linear.weight if weight is None else weight).detach().float()
    bias = linear.bias if bias is None else bias
    if bias is not None:
        spec.bias = bias.detach().float()


def _attention(spec, attention, norm, scale_attn: bool, self_attn: bool) -> None:
    """Self-attention: fused QKV, output; cross-attention: Q, fused KV, output. A missing key bias is zeros."""
    q, k, v, out = attention.q_proj, attention.k_proj, attention.v_proj, attention.out_proj

    def bias(linear):
        if q.bias is None:
            return None
        return linear.bias if linear.bias is not None else torch.zeros_like(q.bias)

    def fused(*linears):
        weight = torch.cat([linear.weight for linear in linears])
        biases = [bias(linear) for linear in linears]
        return weight, (torch.cat(biases) if biases[0] is not None else None)

    if self_attn:
        weight, fused_bias = fused(q, k, v)
        _linear(spec.linear[0], q, weight, fused_bias)
        _linear(spec.linear[1], out)
    else:
        _linear(spec.linear[0], q)
        weight, fused_bias = fused(k, v)
        _linear(spec.linear[1], k, weight, fused_bias)
        _linear(spec.linear[2], out)
    if not scale_attn:
        spec.queries_scale = 1.0  # CTranslate2 scales by 1/sqrt(head_dim) unless told otherwise
    _norm(spec.layer_norm, norm)


def _zero_attention(spec, dim: int, fused_qkv: bool) -> None:
    """An attention block whose output is exactly zero (zero output projection): the residual passes unchanged."""
    shapes = [(3 * dim, dim), (dim, dim)] if fused_qkv else [(dim, dim), (2 * dim, dim), (dim, dim)]
    for linear_spec, shape in zip(spec.linear, shapes):
        linear_spec.weight = torch.zeros(shape)
        linear_spec.bias = torch.zeros(shape[0])
    spec.layer_norm.gamma = torch.ones(dim)
    spec.layer_norm.beta = torch.zeros(dim)


# ---------------------------------------------------------------------------------------------------------------------
# Files next to the model


def _write_inference_yaml(path: Path, inference: dict[str, Any], tokenizer, selectors: dict[str, str | None]) -> None:
    """The source model's inference.yaml, with the languages made explicit when the export or a single-language
    Pasero tokenizer fixed them (TextGenerator reads the declared languages from it)."""
    content = dict(inference)
    for key, attribute, selector in (("source_langs", "src_lang", "source_lang"), ("target_langs", "tgt_lang",
                                                                                    "target_lang")):
        lang = selectors[selector] or getattr(tokenizer, attribute, None)
        if not content.get(key) and lang and not content.get("lang_pairs"):
            content[key] = [lang]
    path.write_text(yaml.safe_dump(content, sort_keys=True, allow_unicode=True), encoding="utf-8")
