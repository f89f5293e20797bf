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


def test_dialogue_trains_on_assistant_turns_only_and_chats_with_history(tmp_path, llama_dir, dialogue_data, capsys,
                                                                         monkeypatch):
    import io

    from transformers import AutoTokenizer

    from pasero_hf.cli.decode import main as decode
    from pasero_hf.cli.train import main as train
    from pasero_hf.data.prompts import CHAT_TEMPLATES, encode_conversation
    from tests.lm.conftest import CONVERSATIONS, lm_options

    tokenizer = AutoTokenizer.from_pretrained(llama_dir)
    ids, flags = encode_conversation(tokenizer, CONVERSATIONS[2], CHAT_TEMPLATES["zephyr"])
    learned = tokenizer.decode([token for token, flag in zip(ids, flags) if flag])
    # the assistant answers and their end-of-turn tokens, not the user turns nor the "<|assistant|>\n" prompts
    assert learned.replace(" ", "") == "Noahfoundfavor.</s>\nIntheeyesofthe Lord.</s>\n".replace(" ", "")

    output = tmp_path / "chat"
    assert train(["--task", "dialogue", "--chat-template", "zephyr", "--max-steps", "60",
                  *lm_options(llama_dir, dialogue_data, output, "--train-corpora", "train.jsonl",
                              "--valid-corpora", "valid.jsonl")]) == 0
    best = output / "model_best"
    capsys.readouterr()
    assert yaml.safe_load((best / "inference.yaml").read_text())["chat_template"] == "zephyr"
    assert json.loads((best / "tokenizer_config.json").read_text()).get("chat_template") or (
        best / "chat_template.jinja").is_file()  # apply_chat_template and pasero-serve render the same template

    # pasero-decode --chat: one user message per line, the history is kept (the second answer needs the first turn)
    monkeypatch.setattr("sys.stdin", io.StringIO("Who found favor?\nIn whose eyes?\n!reset\nWho spoke to Noah?\n"))
    assert decode([str(best), "--chat", "--quiet", "--beam-size", "1"]) == 0
    replies = capsys.readouterr().out.splitlines()
    assert replies == ["Noah found favor.", "In the eyes of the Lord.", "God spoke to Noah."]
