"""Decoding causal language models: LoRA adapters, decoder layer outputs, stop sequences and chat sessions.

`TextGenerator` delegates here what is specific to decoder-only models (prompts themselves are encoded by
`pasero_hf.data.prompts.PromptFormat`, shared with training):

- `adapter_directories`: a PEFT LoRA directory (or Pasero bottleneck adapters of a pretrained model) is decoded on
  top of its base model (`--adapter DIR_OR_REPO`, or the adapter directory itself, which names the base), a LoRA
  optionally merged into it;
- `causal_layers`: `return_layers` (`dec_N`, `dec_N_self_attn`) from one teacher-forced pass over prompt + output;
- `text_before_stop`: outputs end before the first stop sequence;
- `ChatSession`: `pasero-decode --chat`, a conversation whose history is kept between turns.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import torch

from pasero_hf.data.prompts import PromptFormat
from pasero_hf.generation.layer_outputs import LayerRequest
from pasero_hf.models.locate import ADAPTERS_INFO, resolve_model_dir
from pasero_hf.models.pretrained_adapters import is_pretrained_adapter_dir, load_pretrained_adapters, read_adapter_info

ADAPTER_CONFIG = "adapter_config.json"


def adapter_directories(model_dir: Path, adapter: str | os.PathLike | None,
                        revision: str | None = None) -> tuple[Path, Path | None]:
    """(base model directory, adapter directory or None).

    Adapters are PEFT LoRA directories or Pasero bottleneck adapters of a pretrained model
    (`pasero_hf.models.pretrained_adapters`). `model_dir` may itself be an adapter directory (a LoRA or adapter
    training run's model_best): its base is the one it names (adapter_config.json's `base_model_name_or_path`,
    pasero_adapters.json's `base_model`), a directory or a Hub repo id.
    """
    adapter_dir = resolve_model_dir(adapter, revision=revision) if adapter is not None else None
    if adapter_dir is not None and not _adapter_base(adapter_dir, required=False):
        raise FileNotFoundError(f"--adapter {adapter}: {adapter_dir} has no {ADAPTER_CONFIG} (not a PEFT adapter) "
                                f"nor {ADAPTERS_INFO} (Pasero adapters)")
    base = _adapter_base(model_dir, required=True) if not (model_dir / "config.json").is_file() else None
    if base is None:
        return model_dir, adapter_dir
    if adapter_dir is not None:
        raise ValueError(f"{model_dir} is itself an adapter: give its base model with --adapter {model_dir}")
    try:
        return resolve_model_dir(base), model_dir
    except FileNotFoundError as error:
        raise FileNotFoundError(f"base model of the adapter {model_dir}: {error}") from None


def _adapter_base(directory: Path, required: bool) -> str | None:
    """The base model an adapter directory names (None: not an adapter directory)."""
    if is_pretrained_adapter_dir(directory):
        return read_adapter_info(directory)["base_model"]
    if not (directory / ADAPTER_CONFIG).is_file():
        return None
    base = json.loads((directory / ADAPTER_CONFIG).read_text(encoding="utf-8")).get("base_model_name_or_path")
    if not base and required:
        raise ValueError(f"{directory / ADAPTER_CONFIG} does not name its base model (base_model_name_or_path)")
    return base or "?"


def attach_adapter(model: torch.nn.Module, adapter_dir: Path, merge: bool) -> torch.nn.Module:
    """`model` with the adapter of `adapter_dir`: LoRA (merged into its weights when `merge`), or Pasero bottleneck
    adapters, chosen per sentence from its languages or domain (they cannot be merged)."""
    if is_pretrained_adapter_dir(adapter_dir):
        if merge:
            raise ValueError(f"{adapter_dir}: Pasero bottleneck adapters are layers of their own and cannot be merged")
        load_pretrained_adapters(model, adapter_dir)
        return model
    from peft import PeftModel

    try:
        peft_model = PeftModel.from_pretrained(model, str(adapter_dir))
    except (ValueError, RuntimeError, KeyError) as error:
        raise ValueError(f"the adapter {adapter_dir} does not fit the base model: {error}") from None
    return peft_model.merge_and_unload() if merge else peft_model


def files_directory(model_dir: Path, adapter_dir: Path | None) -> Path:
    """Where the tokenizer and inference.yaml are: the adapter's directory when training saved them there."""
    if adapter_dir is not None and (adapter_dir / "tokenizer_config.json").is_file():
        return adapter_dir
    return model_dir


def check_causal_layers(names: Sequence[str]) -> None:
    """ValueError for layer names a decoder-only model does not have (encoder layers, cross-attention)."""
    for name in names:
        if name.startswith("enc_") or name.endswith("_cross_attn"):
            raise ValueError(f"return_layers: {name!r} does not exist in a decoder-only model: use dec_N or "
                             "dec_N_self_attn")


@torch.inference_mode()
def causal_layers(model: torch.nn.Module, prompt: list[int], tokens: list[int],
                  requests: Sequence[LayerRequest]) -> dict[str, np.ndarray]:
    """Decoder layers of one output: `dec_N` (len(tokens), dim) = the states that predicted each output token;
    `dec_N_self_attn` (len(tokens), heads, len(prompt) + len(tokens) - 1) = their attention over prompt + output."""
    if not requests:
        return {}
    if not tokens:
        return {request.name: np.zeros((0, 0, 0) if request.kind else (0, 0), dtype=np.float32) for request in requests}
    ids = torch.tensor([prompt + tokens[:-1]], device=model.device)
    wants_attention = any(request.kind for request in requests)
    out = model(input_ids=ids, use_cache=False, output_hidden_states=True, output_attentions=wants_attention,
                return_dict=True)
    rows = slice(len(prompt) - 1, len(prompt) - 1 + len(tokens))
    layers = {}
    for request in requests:
        if request.kind:
            attention = out.attentions[request.layer][0, :, rows, :]  # heads, outputs, keys
            layers[request.name] = attention.permute(1, 0, 2).float().cpu().numpy()
        else:  # hidden_states[0] is the embedding output
            layers[request.name] = out.hidden_states[request.layer + 1][0, rows].float().cpu().numpy()
    return layers


def text_before_stop(tokenizer: Any, tokens: list[int], stop_sequences: Sequence[str]) -> str:
    """The detokenized output up to its first stop sequence: a token that is one (`<|im_end|>`, which detokenization
    would drop), or a string in the text."""
    names = tokenizer.convert_ids_to_tokens(tokens)
    end = next((index for index, name in enumerate(names) if name in stop_sequences), len(tokens))
    text = tokenizer.decode(tokens[:end], skip_special_tokens=True)
    for stop in stop_sequences:
        position = text.find(stop)
        if position >= 0:
            text = text[:position]
    return text


class ChatSession:
    """A conversation with a causal LM: each `reply` sees the whole history (system prompt, earlier turns).

    Uses the model's prompt format when it was trained for dialogue, else the tokenizer's chat template.
    """

    def __init__(self, generator, system_prompt: str | None = None, **options: Any):
        prompts = generator.prompts
        if generator.is_encoder_decoder:
            raise ValueError("--chat needs a decoder-only (causal) language model")
        if prompts is None or prompts.task != "dialogue":
            if not getattr(generator.tokenizer, "chat_template", None):
                raise ValueError("--chat: this model's tokenizer has no chat template and the model was not trained "
                                 "for dialogue (pasero-train --task dialogue --chat-template NAME)")
            prompts = PromptFormat(task="dialogue")
        self.generator = generator
        self.prompts = PromptFormat(task="dialogue", chat_template=prompts.chat_template,
                                    system_prompt=system_prompt or prompts.system_prompt,
                                    stop_sequences=prompts.stop_sequences)
        self.options = options
        self.history: list[dict[str, str]] = []

    def reply(self, message: str) -> str:
        """The assistant's answer to `message`, given the history (both are added to it)."""
        self.history.append({"role": "user", "content": message})
        saved, self.generator.prompts = self.generator.prompts, self.prompts
        try:
            nbest = self.generator.decode(list(self.history), **self.options)
        finally:
            self.generator.prompts = saved
        answer = nbest[0][0]["detok"].strip()
        self.history.append({"role": "assistant", "content": answer})
        return answer

    def reset(self) -> None:
        self.history = []

    def run(self, lines: TextIO = sys.stdin, output: TextIO = sys.stdout) -> None:
        """Interactive loop: one user message per line; `!reset` starts a new conversation."""
        for line in lines:
            message = line.rstrip("\n")
            if message.strip() == "!reset":
                self.reset()
                continue
            if not message.strip():
                continue
            output.write(self.reply(message) + "\n")
            output.flush()
