"""Request parameters of the three APIs (Pasero's, TGI's, OpenAI's): types, defaults, checks.

Each parser returns a `DecodeRequest`: the inputs, languages and `DecodingOptions` fields for `TextGenerator.decode`,
plus what the response needs (stop sequences, details...). Every problem is a `RequestError` (422 for TGI's clients)
whose message names the field. Ranges of decoding options are checked once, by `DecodingOptions.replace`.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, field
from typing import Any

from pasero_hf.generation import TextGenerator
from pasero_hf.generation.decoding_options import HF_ALIASES
from pasero_hf.serving.errors import invalid
from pasero_hf.serving.limits import ServerLimits

_TRUE = {"1", "true", "yes", "y", "on", "t"}
_FALSE = {"0", "false", "no", "n", "off", "f"}

# Pasero's options (`/help`): type, help. Decoding defaults come from each model (`/{model}/info`).
PASERO_OPTIONS: dict[str, tuple[type, str]] = {
    "input": (list, "text to translate or prompt to continue; repeated (GET, form) or a list (JSON)"),
    "source_lang": (str, "source language (default: the model's only one)"),
    "target_lang": (str, "target language (default: the model's only one)"),
    "domain": (str, "domain of the input (models with domain adapters)"),
    "beam_size": (int, "beam size; 1 is greedy search"),
    "n_best": (int, "hypotheses returned per input (at most beam_size)"),
    "sampling": (bool, "sample instead of searching"),
    "sampling_topp": (float, "nucleus sampling with this top-p, in (0, 1]"),
    "sampling_topk": (int, "sample among the k most likely tokens (0: all)"),
    "sampling_temperature": (float, "softmax temperature when sampling, > 0"),
    "repeat_penalty": (float, "repetition penalty, > 0 (1: none; ~1.2 discourages repeating tokens): scores of tokens "
                              "already in the output are divided by it (multiplied when negative)"),
    "max_output_len": (int, "maximum number of generated tokens"),
    "len_penalty": (float, "hypotheses are ranked by score / (len + 1) ** len_penalty"),
    "seed": (int, "seed of the sampling generator (reproducible samples)"),
    "return_scores": (bool, "also return the score of each output token (pos_scores)"),
}
_LANGUAGE_FIELDS = ("source_lang", "target_lang", "domain")

# TGI's `parameters` (huggingface_hub's TextGenerationInputGenerateParameters) and our translation extras.
_TGI_PARAMETERS = {
    "best_of": int, "decoder_input_details": bool, "details": bool, "do_sample": bool, "frequency_penalty": float,
    "grammar": dict, "max_new_tokens": int, "repetition_penalty": float, "return_full_text": bool, "seed": int,
    "stop": list, "temperature": float, "top_k": int, "top_n_tokens": int, "top_p": float, "truncate": int,
    "typical_p": float, "watermark": bool, "adapter_id": str,
    "source_lang": str, "target_lang": str, "domain": str, "beam_size": int, "len_penalty": float,
    # InferenceClient.translation(): src_lang/tgt_lang and generate_parameters (transformers' generate names)
    "src_lang": str, "tgt_lang": str, "generate_parameters": dict, "clean_up_tokenization_spaces": bool,
    "truncation": str,
}
# accepted only at the value that means "off": the search has no such feature
_TGI_OFF_VALUES = {"frequency_penalty": 0.0, "top_n_tokens": 0, "typical_p": 1.0, "watermark": False, "grammar": None,
                   "adapter_id": None}
# why an OpenAI penalty is refused: it is additive (logit - count x penalty), our only one is multiplicative
_ADDITIVE_PENALTY = ("OpenAI's additive penalty is not implemented by this server; `repetition_penalty` (> 0, 1: none, "
                     "~1.2 discourages repeats; divides the scores of tokens already generated) is accepted instead")

_OPENAI_FIELDS = {
    "model": str, "messages": list, "max_tokens": int, "max_completion_tokens": int, "temperature": float,
    "top_p": float, "seed": int, "stop": list, "stream": bool, "n": int, "stream_options": dict,
    "frequency_penalty": float, "presence_penalty": float, "logprobs": bool, "top_logprobs": int,
    "source_lang": str, "target_lang": str, "repetition_penalty": float,  # extras (`extra_body` of openai's client)
}
_OPENAI_OFF_VALUES = {"frequency_penalty": 0.0, "presence_penalty": 0.0, "n": 1, "logprobs": False, "top_logprobs": 0}


@dataclass
class DecodeRequest:
    """What to decode and how, and what the response should contain."""

    inputs: list[str]
    languages: dict[str, str] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)  # DecodingOptions names
    return_scores: bool = True
    details: bool = False
    decoder_input_details: bool = False
    return_full_text: bool = False
    stop: list[str] = field(default_factory=list)
    best_of: int = 1
    stream: bool = False


def _unknown(name: str, known, where: str):
    close = difflib.get_close_matches(name, list(known), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return invalid(f"unknown {where} {name!r}{hint}")


def coerce(name: str, value: Any, kind: type, from_text: bool = False) -> Any:
    """`value` as a `kind`, or a RequestError naming `name`. `from_text`: query-string or form values (strings)."""
    if value is None:
        return None
    what = {int: "an integer", float: "a number", bool: "a boolean", str: "a string", list: "a list of strings",
            dict: "an object"}[kind]
    try:
        if kind is bool:
            if isinstance(value, bool):
                return value
            if from_text and isinstance(value, str) and value.lower() in _TRUE | _FALSE:
                return value.lower() in _TRUE
        elif kind is int:
            if isinstance(value, int) and not isinstance(value, bool):
                return value
            if from_text and isinstance(value, str):
                return int(value)
        elif kind is float:
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                number = float(value)
            elif from_text and isinstance(value, str):
                number = float(value)
            else:
                raise ValueError
            if not math.isfinite(number):
                raise ValueError
            return number
        elif kind is str:
            if isinstance(value, str):
                return value
        elif kind is list:
            items = [value] if isinstance(value, str) else value
            if isinstance(items, list) and all(isinstance(item, str) for item in items):
                return list(items)
        elif kind is dict and isinstance(value, dict):
            return value
    except ValueError:
        pass
    raise invalid(f"`{name}` must be {what}, got {value!r}")


def check_decoding(generator: TextGenerator, options: dict[str, Any], limits: ServerLimits) -> dict[str, Any]:
    """Options under `DecodingOptions` names, checked against the model's defaults and the server's limits."""
    options = {HF_ALIASES.get(name, name): value for name, value in options.items() if value is not None}
    try:
        merged = generator.options.replace(options, origin="request")
    except ValueError as error:
        raise invalid(str(error).removeprefix("invalid request: ")) from None
    if "max_output_len" in options:
        if not 1 <= options["max_output_len"] <= limits.max_new_tokens:
            raise invalid(f"`max_new_tokens` (max_output_len) must be between 1 and {limits.max_new_tokens}, "
                          f"got {options['max_output_len']}")
    elif merged.max_output_len > limits.max_new_tokens:
        options["max_output_len"] = limits.max_new_tokens
    return options


def _repetition_penalty(value: float) -> float:
    if value <= 0:
        raise invalid(f"`repetition_penalty` must be strictly positive (1.0: no penalty), got {value}")
    return value


def _check_inputs(inputs: list[str] | None, limits: ServerLimits, name: str) -> list[str]:
    if not inputs or all(not text.strip() for text in inputs):
        raise invalid(f"`{name}` is missing or empty")
    if len(inputs) > limits.max_inputs:
        raise invalid(f"`{name}` has {len(inputs)} items, more than the limit of {limits.max_inputs} per request")
    return inputs


def parse_pasero(data: dict[str, Any], generator: TextGenerator, limits: ServerLimits,
                 from_text: bool = False) -> DecodeRequest:
    """`/{model}/decode` and `/{model}/stream` options (Pasero's names; strings when they come from a query string)."""
    values = {}
    for name, value in data.items():
        if name not in PASERO_OPTIONS:
            raise _unknown(name, PASERO_OPTIONS, "option")
        values[name] = coerce(name, value, PASERO_OPTIONS[name][0], from_text)
    inputs = _check_inputs(values.pop("input", None), limits, "input")
    languages = {name: values.pop(name) for name in _LANGUAGE_FIELDS if values.get(name) is not None}
    return_scores = values.pop("return_scores", None)
    options = check_decoding(generator, values, limits)
    return DecodeRequest(inputs, languages, options, return_scores=True if return_scores is None else return_scores)


def parse_tgi(body: Any, generator: TextGenerator, limits: ServerLimits) -> DecodeRequest:
    """TGI's `{"inputs", "parameters", "stream"}` (POST `/`, `/generate`, `/generate_stream`)."""
    if not isinstance(body, dict):
        raise invalid(f"the request body must be a JSON object with `inputs`, got {type(body).__name__}")
    for name in body:
        if name not in ("inputs", "parameters", "stream"):
            raise _unknown(name, ("inputs", "parameters", "stream"), "field")
    inputs = body.get("inputs")
    if not isinstance(inputs, str):
        raise invalid("`inputs` is missing" if inputs is None else f"`inputs` must be a string, got {inputs!r}")
    _check_inputs([inputs], limits, "inputs")
    parameters = body.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise invalid(f"`parameters` must be an object, got {parameters!r}")
    parameters = dict(parameters)
    generate_parameters = coerce("generate_parameters", parameters.pop("generate_parameters", None), dict) or {}
    values: dict[str, Any] = {}
    for name, value in {**parameters, **generate_parameters}.items():
        kind = _TGI_PARAMETERS.get(name)
        if kind is None and name in ("num_beams", "num_return_sequences", "length_penalty"):
            kind = float if name == "length_penalty" else int  # transformers' names, from generate_parameters
        if kind is None:
            raise _unknown(name, _TGI_PARAMETERS, "parameter")
        values[name] = coerce(f"parameters.{name}", value, kind)
    for name, off in _TGI_OFF_VALUES.items():
        if values.get(name) is not None and values[name] != off:
            why = _ADDITIVE_PENALTY if name == "frequency_penalty" else "leave it out"
            raise invalid(f"`{name}` is not supported by this server ({why})")
    request = DecodeRequest([inputs], stream=coerce("stream", body.get("stream"), bool) or False)
    for ours, theirs in (("source_lang", "src_lang"), ("target_lang", "tgt_lang")):
        lang = values.get(ours) or values.get(theirs)
        if lang is not None:
            request.languages[ours] = lang
    if values.get("domain") is not None:
        request.languages["domain"] = values["domain"]
    request.details = bool(values.get("details"))
    request.decoder_input_details = bool(values.get("decoder_input_details"))
    request.return_full_text = bool(values.get("return_full_text"))

    stop = values.get("stop") or []
    if len(stop) > limits.max_stop_sequences:
        raise invalid(f"`stop` has {len(stop)} sequences, more than the limit of {limits.max_stop_sequences}")
    if any(not sequence for sequence in stop):
        raise invalid("`stop` sequences must not be empty")
    request.stop = stop

    options: dict[str, Any] = {}
    sampling = values.get("do_sample")
    if values.get("temperature") is not None:
        if values["temperature"] <= 0:
            raise invalid(f"`temperature` must be strictly positive, got {values['temperature']}")
        options["temperature"] = values["temperature"]
    if values.get("top_k") is not None:
        if values["top_k"] <= 0:
            raise invalid(f"`top_k` must be strictly positive, got {values['top_k']}")
        options["sampling_topk"] = values["top_k"]
    if values.get("top_p") is not None:
        if not 0 < values["top_p"] < 1:
            raise invalid(f"`top_p` must be > 0.0 and < 1.0, got {values['top_p']}")
        options["sampling_topp"] = values["top_p"]
    if sampling is not None:
        options["sampling"] = sampling
    for ours, theirs in (("max_output_len", "max_new_tokens"), ("beam_size", "beam_size"),
                         ("beam_size", "num_beams"), ("len_penalty", "len_penalty"),
                         ("len_penalty", "length_penalty"), ("seed", "seed"), ("n_best", "num_return_sequences")):
        if values.get(theirs) is not None:
            options[ours] = values[theirs]
    if values.get("max_new_tokens") is not None and values["max_new_tokens"] < 1:
        raise invalid(f"`max_new_tokens` must be strictly positive, got {values['max_new_tokens']}")
    if values.get("seed") is not None and values["seed"] < 0:
        raise invalid(f"`seed` must be >= 0, got {values['seed']}")
    if values.get("repetition_penalty") is not None:
        options["repeat_penalty"] = _repetition_penalty(values["repetition_penalty"])
    if values.get("truncate") is not None:
        if values["truncate"] < 1:
            raise invalid(f"`truncate` must be strictly positive, got {values['truncate']}")
        options["max_source_len"] = values["truncate"]
    best_of = values.get("best_of") or 1
    if not 1 <= best_of <= limits.max_best_of:
        raise invalid(f"`best_of` must be between 1 and {limits.max_best_of}, got {best_of}")
    if best_of > 1 and not sampling:
        raise invalid("you must use sampling when `best_of` is > 1 (set `do_sample`)")
    if best_of > 1 and request.stream:
        raise invalid("`best_of` != 1 is not allowed for this endpoint (streaming)")
    request.best_of = best_of
    request.options = check_decoding(generator, options, limits)
    return request


def parse_openai_chat(body: Any, generator: TextGenerator, limits: ServerLimits) -> tuple[DecodeRequest, list]:
    """OpenAI's chat completion request: (decoding request, whose input the caller renders, messages)."""
    if not isinstance(body, dict):
        raise invalid(f"the request body must be a JSON object, got {type(body).__name__}")
    values = {}
    for name, value in body.items():
        if name not in _OPENAI_FIELDS:
            raise _unknown(name, _OPENAI_FIELDS, "field")
        values[name] = coerce(name, value, _OPENAI_FIELDS[name]) if name != "messages" else value
    for name, off in _OPENAI_OFF_VALUES.items():
        if values.get(name) is not None and values[name] != off:
            why = _ADDITIVE_PENALTY if name.endswith("_penalty") else "leave it out"
            raise invalid(f"`{name}` is not supported by this server ({why})")
    messages = values.get("messages")
    if not isinstance(messages, list) or not messages:
        raise invalid("`messages` is missing or empty")
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str) or not isinstance(
            message.get("content"), str
        ):
            raise invalid(f"`messages[{index}]` must be an object with string `role` and `content`")
    stop = values.get("stop") or []
    if len(stop) > limits.max_stop_sequences:
        raise invalid(f"`stop` has {len(stop)} sequences, more than the limit of {limits.max_stop_sequences}")
    options: dict[str, Any] = {"beam_size": 1}
    temperature = values.get("temperature")
    if temperature is not None:
        if not 0 <= temperature <= 2:
            raise invalid(f"`temperature` must be between 0 and 2, got {temperature}")
        options["sampling"] = temperature > 0
        if temperature > 0:
            options["temperature"] = temperature
    if values.get("top_p") is not None:
        if not 0 < values["top_p"] <= 1:
            raise invalid(f"`top_p` must be in (0, 1], got {values['top_p']}")
        options["sampling_topp"] = values["top_p"]
    max_tokens = values.get("max_completion_tokens") or values.get("max_tokens")
    if max_tokens is not None:
        if max_tokens < 1:
            raise invalid(f"`max_tokens` must be strictly positive, got {max_tokens}")
        options["max_output_len"] = max_tokens
    if values.get("seed") is not None:
        options["seed"] = values["seed"]
    if values.get("repetition_penalty") is not None:
        options["repeat_penalty"] = _repetition_penalty(values["repetition_penalty"])
    request = DecodeRequest([], stop=stop, stream=bool(values.get("stream")))
    for name in ("source_lang", "target_lang"):
        if values.get(name):
            request.languages[name] = values[name]
    request.options = check_decoding(generator, options, limits)
    return request, messages
