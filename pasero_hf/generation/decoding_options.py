"""Decoding options of `TextGenerator`: one typed record, read from a model directory and overridable per call.

Defaults come, lowest priority first, from the dataclass, the model's `generation_config.json` (Hugging Face names),
its `inference.yaml` (Pasero names), then keyword arguments. Names follow Pasero (`beam_size`, `max_output_len`,
`sampling_topk`...); the usual Hugging Face spellings are accepted as aliases so that either vocabulary works.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

# Hugging Face (generation_config.json / generate kwargs) names -> ours.
HF_ALIASES = {
    "num_beams": "beam_size",
    "max_new_tokens": "max_output_len",
    "length_penalty": "len_penalty",
    "do_sample": "sampling",
    "top_k": "sampling_topk",
    "top_p": "sampling_topp",
    "num_return_sequences": "n_best",
    "sampling_temperature": "temperature",  # Pasero's own name
    "repetition_penalty": "repeat_penalty",
}

# inference.yaml keys that describe the model or its data, not decoding: read elsewhere, ignored here.
NON_DECODING_KEYS = {
    "dict", "dtype", "keep_whitespaces", "tokenizer_path", "tokenizer", "source_langs", "target_langs",
    "lang_pairs", "max_target_len", "source_dict", "target_dict", "domains", "model_type", "arch",
}


@dataclasses.dataclass
class DecodingOptions:
    """How to decode. Every field can be changed per `TextGenerator.decode` call.

    Attributes:
        beam_size: beam width; 1 is greedy decoding.
        max_output_len: maximum number of generated tokens (the decoder prompt excluded).
        len_penalty: n-best hypotheses are ranked by `score / (len(tokens) + 1) ** len_penalty`.
        n_best: number of hypotheses returned per input (at most `beam_size` with beam search).
        sampling: sample instead of searching (uses `temperature`, `sampling_topk`, `sampling_topp`; `beam_size`
            is then ignored).
        temperature: softmax temperature when sampling.
        sampling_topk: sample among the k most likely tokens (0: all).
        sampling_topp: nucleus sampling probability mass (1: all).
        repeat_penalty: `transformers`' (CTRL's) repetition penalty, > 0, 1 for none: at each step, the scores of
            the tokens already in the decoder input (its start token and forced prefix included; a decoder-only
            model's prompt too) are divided by it when positive, multiplied when negative. Greedy search and
            sampling apply it to the logits, beam search to the log-probabilities, as `generate` does.
        batch_size: maximum number of tokens per batch (longest source x lines, padding included).
        lines_per_batch: maximum number of lines per batch (None: at most 256 decoder rows, i.e. lines x beams).
        max_source_len: sources longer than this (in tokens, special tokens included) are truncated.
        seed: seed of the sampling generator (None: torch's global generator).
        search: "pasero" (Pasero's exact search), "hf" (`model.generate`) or "auto" (Pasero's for Pasero models).
        stop_sequences: decoder-only models stop generating at these strings, which `detok` leaves out.
    """

    beam_size: int = 5
    max_output_len: int = 100
    len_penalty: float = 1.0
    n_best: int = 1
    sampling: bool = False
    temperature: float = 1.0
    sampling_topk: int = 0
    sampling_topp: float = 1.0
    repeat_penalty: float = 1.0
    batch_size: int = 4096
    lines_per_batch: int | None = None
    max_source_len: int | None = None
    seed: int | None = None
    search: str = "auto"
    stop_sequences: list[str] | None = None

    @property
    def num_beams(self) -> int:
        """Beams the search keeps: sampling draws one sample per output, whatever `beam_size` says."""
        return 1 if self.sampling else self.beam_size

    def search_kwargs(self) -> dict[str, Any]:
        """These options as the keyword arguments of `beam_search.pasero_search`."""
        return {
            "beam_size": self.num_beams, "max_output_len": self.max_output_len, "len_penalty": self.len_penalty,
            "n_best": self.n_best, "sampling": self.sampling, "temperature": self.temperature,
            "top_k": self.sampling_topk, "top_p": self.sampling_topp, "repeat_penalty": self.repeat_penalty,
        }

    def replace(self, overrides: Mapping[str, Any], origin: str = "decoding options") -> DecodingOptions:
        """A validated copy with `overrides` applied (our names or Hugging Face aliases); unknown names are an error."""
        values = dataclasses.asdict(self)
        names = set(values)
        for key, value in overrides.items():
            name = HF_ALIASES.get(key, key)
            if name not in names:
                raise ValueError(
                    f"unknown decoding option {key!r} in {origin}: expected one of {', '.join(sorted(names))}"
                )
            values[name] = value
        options = DecodingOptions(**values)
        options.validate(origin)
        return options

    def validate(self, origin: str = "decoding options") -> None:
        """Raise a ValueError naming the option when a value is out of range or options contradict each other."""

        def check(condition: bool, message: str) -> None:
            if not condition:
                raise ValueError(f"invalid {origin}: {message}")

        check(isinstance(self.beam_size, int) and self.beam_size >= 1, f"beam_size must be >= 1, got {self.beam_size}")
        check(
            isinstance(self.max_output_len, int) and self.max_output_len >= 0,
            f"max_output_len must be >= 0, got {self.max_output_len}",
        )
        check(isinstance(self.n_best, int) and self.n_best >= 1, f"n_best must be >= 1, got {self.n_best}")
        check(
            self.sampling or self.n_best <= self.beam_size,
            f"n_best ({self.n_best}) cannot exceed beam_size ({self.beam_size}) with beam search",
        )
        check(self.temperature > 0, f"temperature must be > 0, got {self.temperature}")
        check(self.sampling_topk >= 0, f"sampling_topk must be >= 0, got {self.sampling_topk}")
        check(0 < self.sampling_topp <= 1, f"sampling_topp must be in (0, 1], got {self.sampling_topp}")
        check(
            isinstance(self.repeat_penalty, (int, float)) and not isinstance(self.repeat_penalty, bool)
            and self.repeat_penalty > 0,
            f"repeat_penalty must be > 0 (1: none), got {self.repeat_penalty!r}",
        )
        check(self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}")
        check(
            self.lines_per_batch is None or self.lines_per_batch >= 1,
            f"lines_per_batch must be >= 1, got {self.lines_per_batch}",
        )
        check(self.search in ("auto", "pasero", "hf"), f"search must be 'auto', 'pasero' or 'hf', got {self.search!r}")
        check(
            self.stop_sequences is None or (isinstance(self.stop_sequences, list) and all(
                isinstance(stop, str) and stop for stop in self.stop_sequences)),
            f"stop_sequences must be a list of non-empty strings, got {self.stop_sequences!r}",
        )
        check(
            self.max_source_len is None or self.max_source_len >= 1,
            f"max_source_len must be >= 1, got {self.max_source_len}",
        )


def read_generation_config(model_dir: Path) -> dict[str, Any]:
    """Decoding defaults from `generation_config.json` (Hugging Face names mapped to ours); {} when absent."""
    path = model_dir / "generation_config.json"
    if not path.is_file():
        return {}
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: invalid JSON at line {error.lineno}: {error.msg}") from error
    defaults = {HF_ALIASES[key]: value for key, value in config.items() if key in HF_ALIASES and value is not None}
    if "max_new_tokens" not in config and config.get("max_length") is not None:
        defaults["max_output_len"] = config["max_length"]
    return defaults


def read_inference_yaml(model_dir: Path) -> dict[str, Any]:
    """The whole `inference.yaml` written by Pasero training (or by hand); {} when absent."""
    path = model_dir / "inference.yaml"
    if not path.is_file():
        return {}
    try:
        content = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as error:
        raise ValueError(f"{path}: invalid YAML: {error}") from error
    if not isinstance(content, dict):
        raise ValueError(f"{path}: expected a mapping of option names to values, got {type(content).__name__}")
    return content


def decoding_defaults(inference_yaml: Mapping[str, Any]) -> dict[str, Any]:
    """The decoding options among an `inference.yaml`'s entries (model and data entries left out)."""
    return {key: value for key, value in inference_yaml.items() if key not in NON_DECODING_KEYS}
