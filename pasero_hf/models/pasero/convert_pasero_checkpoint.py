"""Convert an original Pasero model directory (checkpoint + training/inference YAML + dict + bpecodes) to a Hugging
Face model directory: safetensors weights, config.json, generation_config.json and tokenizer files.

Nothing is loaded half-way: unknown or missing weights, shape mismatches and architecture options this model does not
implement are reported together, naming the checkpoint keys or options, before anything is written.
"""

import logging
import os
import re
from pathlib import Path
from typing import Any

import torch
import yaml
from transformers import GenerationConfig

from pasero_hf.models.pasero.configuration_pasero import ARCHITECTURES, PaseroConfig
from pasero_hf.models.pasero.modeling_pasero import PaseroForConditionalGeneration
from pasero_hf.tokenization.file_utils import atomic_directory

logger = logging.getLogger(__name__)

# Pasero option -> PaseroConfig field, for the options that map one to one.
_SAME_NAME_OPTIONS = (
    "embed_dim", "encoder_layers", "decoder_layers", "encoder_attention_heads", "decoder_attention_heads",
    "encoder_ffn_dim", "decoder_ffn_dim", "encoder_prenorm", "decoder_prenorm", "encoder_embed_norm",
    "decoder_embed_norm", "activation_fn", "dropout", "decoder_dropout", "embed_dropout", "attention_dropout",
    "activation_dropout", "scale_embed", "shared_embeddings", "tied_output_projection",
    "encoder_positional_encoding", "decoder_positional_encoding", "positional_encoding_shift", "encoder_max_len",
    "decoder_max_len", "norm_eps", "has_bias", "attention_key_bias", "scale_attn", "encoder_adapter_layer_ids",
    "decoder_adapter_layer_ids", "encoder_adapters_by", "decoder_adapters_by", "adapter_zero_init",
)
_TOKEN_OPTIONS = {"padding_idx": "pad_token_id", "eos_idx": "eos_token_id", "unk_idx": "unk_token_id"}
# Options whose other values change the network in ways this model does not implement: option -> accepted values.
_UNSUPPORTED_UNLESS = {
    "model_type": ("encoder_decoder", None),
    "rms_norm": (False, None),
    "norm_bias": (True, None),
    "shared_norm": (False, None),
    "parallel_attention": (False, None),
    "attention_heads_kv": (None,),
    "sliding_window": (None,),
    "max_qkv": (None,),
    "conv_kernel_sizes": (None,),
    "input_dim": (None,),
    "check_inf": (False, None),
}
_SUPPORTED_ARCHS = set(ARCHITECTURES)
_ADAPTER_KEY = re.compile(r"(?P<side>encoder|decoder)\.layers\.\d+\.adapters\.(?P<name>[^.]+)\.down\.weight")
_LORA_KEY = re.compile(r"(?P<prefix>.*\.)lora\.down\.weight")


class ConversionError(ValueError):
    """The Pasero model cannot be converted faithfully; the message lists every problem found."""


def read_yaml(path: Path) -> dict[str, Any]:
    """A YAML mapping, or an empty one when the file does not exist."""
    if not path.exists():
        return {}
    with open(path, encoding="utf-8") as file:
        content = yaml.safe_load(file)
    if content is None:
        return {}
    if not isinstance(content, dict):
        raise ConversionError(f"{path}: expected a YAML mapping, got {type(content).__name__}")
    return content


def load_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The model weights and the training options stored in a Pasero checkpoint (loaded with weights_only=True)."""
    if not path.exists():
        raise ConversionError(f"checkpoint not found: {path}")
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("model"), dict):
        raise ConversionError(f"{path}: not a Pasero checkpoint (expected a dict with a 'model' state dict)")
    return checkpoint["model"], dict(checkpoint.get("args") or {})


def config_from_options(options: dict[str, Any], state_dict: dict[str, torch.Tensor], source: str) -> PaseroConfig:
    """PaseroConfig from Pasero's resolved training options; raises ConversionError listing unsupported options."""
    problems = []
    arch = options.get("arch", "transformer")
    if arch not in _SUPPORTED_ARCHS:
        problems.append(f"arch={arch!r} (supported: {', '.join(sorted(_SUPPORTED_ARCHS))})")
    for option, accepted in _UNSUPPORTED_UNLESS.items():
        if options.get(option) not in accepted:
            problems.append(f"{option}={options.get(option)!r} (supported: {accepted[0]!r})")
    for side in ("encoder", "decoder"):
        encoding = options.get(f"{side}_positional_encoding", "sinusoidal")
        if encoding not in ("sinusoidal", "learned"):
            problems.append(f"{side}_positional_encoding={encoding!r} (supported: 'sinusoidal', 'learned')")
    if options.get("activation_fn", "relu") not in ("relu", "gelu", "gelu_tanh"):
        problems.append(f"activation_fn={options.get('activation_fn')!r} (supported: relu, gelu, gelu_tanh)")
    if options.get("bos_idx", 2) != options.get("eos_idx", 2):
        problems.append(f"bos_idx={options.get('bos_idx')} != eos_idx={options.get('eos_idx')} (decoder start = EOS)")
    if options.get("target_dict") and options.get("shared_embeddings", True):
        problems.append(f"target_dict={options['target_dict']!r} with shared_embeddings=True (a separate target "
                        f"vocabulary needs shared_embeddings=False: one embedding matrix cannot index two dictionaries)")
    if problems:
        raise ConversionError(f"{source}: unsupported Pasero options:\n  " + "\n  ".join(problems))

    fields = {name: options[name] for name in _SAME_NAME_OPTIONS if name in options}
    fields.update({field: options[option] for option, field in _TOKEN_OPTIONS.items() if option in options})
    fields["decoder_start_token_id"] = options.get("bos_idx", 2)
    embed_key = "encoder.embed_tokens.weight" if "encoder.embed_tokens.weight" in state_dict else (
        "decoder.embed_tokens.weight"
    )
    if embed_key not in state_dict:
        raise ConversionError(f"{source}: no embedding matrix (encoder.embed_tokens.weight) in the checkpoint")
    fields["vocab_size"] = state_dict.get("decoder.embed_tokens.weight", state_dict[embed_key]).shape[0]
    if not fields.get("shared_embeddings", True) and "encoder.embed_tokens.weight" in state_dict:
        fields["encoder_vocab_size"] = state_dict["encoder.embed_tokens.weight"].shape[0]
    if arch.startswith("adapter_"):
        fields.update(_adapter_fields(options, state_dict))
    return PaseroConfig(**fields)


def _adapter_fields(options: dict[str, Any], state_dict: dict[str, torch.Tensor]) -> dict[str, Any]:
    """Adapter names and sizes as found in the checkpoint (Pasero adapts both to the checkpoint at inference)."""
    fields: dict[str, Any] = {}
    for side in ("encoder", "decoder"):
        names: dict[str, int] = {}
        for key, value in state_dict.items():
            match = _ADAPTER_KEY.fullmatch(key)
            if match and match["side"] == side:
                names.setdefault(match["name"], value.shape[0])
        configured = options.get(f"{side}_adapters") or []
        ordered = [n for n in configured if n in names] + sorted(n for n in names if n not in configured)
        fields[f"{side}_adapters"] = ordered
        sizes = set(names.values())
        if len(sizes) > 1:
            raise ConversionError(f"{side} adapters have different bottleneck sizes {sorted(sizes)}: not supported")
        fields[f"{side}_adapter_dim"] = sizes.pop() if sizes else options.get(f"{side}_adapter_dim", 64)
    return fields


def remap_state_dict(
    state_dict: dict[str, torch.Tensor], options: dict[str, Any], config: PaseroConfig
) -> dict[str, torch.Tensor]:
    """Pasero parameter names -> PaseroForConditionalGeneration names (LoRA merged, fairseq in_proj split)."""
    weights = dict(state_dict)
    for key in [k for k in weights if k.endswith("._float_tensor") or k.endswith(".version")]:
        del weights[key]
    for key in [k for k in weights if k.endswith(".in_proj_weight") or k.endswith(".in_proj_bias")]:
        fused = weights.pop(key)
        for part, chunk in zip(("q_proj", "k_proj", "v_proj"), fused.chunk(3)):
            weights[key.replace("in_proj_", f"{part}.")] = chunk
    lora_scale = options.get("lora_alpha", 8) / max(options.get("lora_rank") or 1, 1)
    for key in [k for k in weights if _LORA_KEY.fullmatch(k)]:
        prefix = _LORA_KEY.fullmatch(key)["prefix"]
        down = weights.pop(key).float()
        up = weights.pop(prefix + "lora.up.weight").float()
        target = weights[prefix + "weight"]
        weights[prefix + "weight"] = (target.float() + up @ down * lora_scale).to(target.dtype)
    if config.shared_embeddings:
        # Pasero saves shared matrices once; either side may hold it
        embed = weights.pop("encoder.embed_tokens.weight", None)
        decoder_embed = weights.pop("decoder.embed_tokens.weight", None)
        if embed is not None and decoder_embed is not None and not torch.equal(embed, decoder_embed):
            raise ConversionError("shared_embeddings=True but the encoder and decoder embeddings differ")
        weights["encoder.embed_tokens.weight"] = embed if embed is not None else decoder_embed
    if config.tied_output_projection:
        weights.pop("decoder.output_projection.weight", None)
    remapped = {}
    for key, value in weights.items():
        if key == "decoder.output_projection.weight":
            remapped["lm_head.weight"] = value
        else:
            remapped[f"model.{key}"] = value
    return remapped


def load_weights(model: PaseroForConditionalGeneration, weights: dict[str, torch.Tensor], source: str) -> None:
    """Load all weights or none: raise ConversionError listing unexpected, missing and mis-shaped parameters."""
    expected = model.state_dict()
    tied = set(model.all_tied_weights_keys)
    required = {key for key in expected if key not in tied}
    unexpected = sorted(set(weights) - set(expected))
    missing = sorted(required - set(weights))
    mismatched = [
        f"{key}: checkpoint {tuple(value.shape)} vs model {tuple(expected[key].shape)}"
        for key, value in weights.items()
        if key in expected and value.shape != expected[key].shape
    ]
    problems = []
    if unexpected:
        problems.append("unexpected keys (not part of this architecture):\n    " + "\n    ".join(unexpected))
    if missing:
        problems.append("missing keys:\n    " + "\n    ".join(missing))
    if mismatched:
        problems.append("shape mismatches (config contradicts checkpoint):\n    " + "\n    ".join(mismatched))
    if problems:
        raise ConversionError(f"{source}: cannot load the checkpoint:\n  " + "\n  ".join(problems))
    model.load_state_dict(weights, strict=False)
    model.tie_weights()


def generation_config_from(options: dict[str, Any], config: PaseroConfig) -> GenerationConfig:
    """Beam size, output length cap and length penalty as Pasero decodes by default."""
    return GenerationConfig(
        num_beams=int(options.get("beam_size", 5)),
        max_new_tokens=int(options.get("max_output_len", 100)),
        length_penalty=float(options.get("len_penalty", 1.0)),
        decoder_start_token_id=config.decoder_start_token_id,
        bos_token_id=config.bos_token_id,
        eos_token_id=config.eos_token_id,
        pad_token_id=config.pad_token_id,
    )


def build_tokenizer(model_dir: Path, options: dict[str, Any]):
    """The PaseroTokenizer `pasero-decode` would use: the model's bpecodes, with dict.txt as its vocabulary, and
    Pasero's language-code options (the languages preset when the model has a single source/target language)."""
    from pasero_hf.tokenization.tokenization_pasero import PaseroTokenizer

    model_dir = Path(model_dir)
    if options.get("tokenizer", "pasero") != "pasero":
        raise ConversionError(f"{model_dir}: tokenizer={options.get('tokenizer')!r} is not supported (only 'pasero')")
    if options.get("target_tokenizer") not in (None, options.get("tokenizer", "pasero")):
        raise ConversionError(f"{model_dir}: target_tokenizer={options.get('target_tokenizer')!r} is not supported "
                              f"(the target side must use the source's kind of tokenizer, "
                              f"{options.get('tokenizer', 'pasero')!r})")
    # Pasero's separate target side (target_dict, target_tokenizer_path), in inference.yaml when it differs
    files = {"dict": "dict.txt", "tokenizer_path": "bpecodes", "target_dict": None, "target_tokenizer_path": None}
    paths = {}
    for option, default in files.items():
        value = options.get(option) or default
        if value is None:
            continue
        path = model_dir / value
        if not path.exists() and (model_dir / Path(value).name).exists():
            path = model_dir / Path(value).name  # Pasero copies the tokenizer files to the model directory's root
        if not path.exists():
            raise ConversionError(f"{model_dir}/inference.yaml: {option} points to a missing file {path}")
        paths[option] = path
    dict_path, bpe_path = paths["dict"], paths["tokenizer_path"]
    target_dict, target_bpe = paths.get("target_dict"), paths.get("target_tokenizer_path")
    source_langs = options.get("source_langs") or []
    target_langs = options.get("target_langs") or []
    return PaseroTokenizer(
        bpe_file=str(bpe_path),
        dict_file=str(dict_path),
        source_lang_code=bool(options.get("source_lang_code")),
        lang_code=bool(options.get("lang_code")),
        target_lang_code=bool(options.get("target_lang_code")),
        src_lang=source_langs[0] if len(source_langs) == 1 else None,
        tgt_lang=target_langs[0] if len(target_langs) == 1 else None,
        target_dict_file=str(target_dict) if target_dict else None,
        target_bpe_file=str(target_bpe) if target_bpe else None,
    )


def check_vocabulary_sizes(model: PaseroForConditionalGeneration, tokenizer, options: dict[str, Any],
                           source: str) -> None:
    """Each dictionary fits its embedding matrix (Pasero may pad a matrix beyond its dictionary, never less)."""
    config = model.config
    sides = [("dict", tokenizer.vocab_size, config.encoder_vocab_size or config.vocab_size, "encoder")]
    if tokenizer.separate_vocabs:
        sides.append(("target_dict", tokenizer.target_vocab_size, config.vocab_size, "decoder"))
    for option, entries, rows, side in sides:
        if entries > rows:
            raise ConversionError(f"{source}: {option} {options.get(option)!r} has {entries} entries but the {side} "
                                  f"embeddings have {rows} rows: not the dictionary this model was trained with")


def load_pasero_model(
    model_dir: str | os.PathLike, checkpoint: str = "model_best.bin"
) -> tuple[PaseroForConditionalGeneration, GenerationConfig, dict[str, Any]]:
    """The converted model (eval mode), its generation config and the merged Pasero options (inference.yaml over
    training.yaml over the checkpoint's own options)."""
    model_dir = Path(model_dir)
    state_dict, checkpoint_options = load_checkpoint(model_dir / checkpoint)
    options = {**checkpoint_options, **read_yaml(model_dir / "training.yaml")}
    model_options = dict(options)  # architecture: as trained
    options.update(read_yaml(model_dir / "inference.yaml"))
    source = str(model_dir / checkpoint)
    config = config_from_options(model_options, state_dict, source)
    model = PaseroForConditionalGeneration(config)
    load_weights(model, remap_state_dict(state_dict, model_options, config), source)
    model.eval()
    generation_config = generation_config_from(options, config)
    model.generation_config = generation_config
    return model, generation_config, options


def convert_pasero_checkpoint(
    model_dir: str | os.PathLike,
    output_dir: str | os.PathLike,
    checkpoint: str = "model_best.bin",
    overwrite: bool = False,
) -> Path:
    """Convert `model_dir` into a Hugging Face model directory `output_dir`, written atomically; returns it."""
    model_dir, output_dir = Path(model_dir), Path(output_dir)
    if output_dir.exists() and not output_dir.is_dir():
        raise FileExistsError(f"output path {output_dir} exists and is not a directory")
    if output_dir.exists() and any(output_dir.iterdir()) and not overwrite:
        raise FileExistsError(f"output directory {output_dir} exists and is not empty (use overwrite=True / --force)")
    model, _, options = load_pasero_model(model_dir, checkpoint)
    tokenizer = build_tokenizer(model_dir, options)
    check_vocabulary_sizes(model, tokenizer, options, str(model_dir / checkpoint))
    if tokenizer.target_lang_code and tokenizer.tgt_lang:
        # single-target model trained with target language codes: decoding starts with `</s> <lang:tgt>`
        model.generation_config.forced_bos_token_id = tokenizer.lang_code_id(tokenizer.tgt_lang, target=True)
    with atomic_directory(output_dir) as staging:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
    logger.info("converted %s -> %s", model_dir / checkpoint, output_dir)
    return output_dir
