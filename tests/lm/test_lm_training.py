"""Fine-tuning a causal LM on translation prompts and dialogues (tiny random Llama, real tokenizer and files)."""

from __future__ import annotations

import json

import pytest
import yaml

from tests.lm.conftest import PAIRS


def test_translation_prompts_overfit_and_decode_follows_the_prompt(trained_lm):
    from pasero_hf.generation import TextGenerator

    inference = yaml.safe_load((trained_lm / "model_best" / "inference.yaml").read_text())
    assert inference["task"] == "lm" and inference["prompt_template"] == "{src_lang}: {source}\n{tgt_lang}:"
    assert inference["lang_pairs"] == ["en-es"]
    log = (trained_lm / "train.log").read_text()
    assert "eval_chrf" in log or "chrf" in log
    generator = TextGenerator.from_pretrained(trained_lm / "model_best", beam_size=1)
    nbest = generator.decode(*[source for source, _ in PAIRS], source_lang="en", target_lang="es")
    outputs = [hypotheses[0]["detok"] for hypotheses in nbest]
    correct = sum(output == target for output, (_, target) in zip(outputs, PAIRS))
    assert correct >= 7, outputs
    # the prompt is what training saw: "en: SOURCE\nes:" tokenized alone, then the target
    prompt = generator.tokenizer.convert_tokens_to_string(nbest[0][0]["prompt_tokens"])
    assert prompt.strip().startswith("en: God spoke") and prompt.rstrip().endswith("es:")
