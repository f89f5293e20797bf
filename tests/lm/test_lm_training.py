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


def test_causal_batches_shift_labels_and_keep_the_prompt_apart():
    from pasero_hf.data.causal_lm import collate_causal

    # two sequences: prompt [5, 6] + target [7, 8]; prompt [5] + target [9] (padded with 1)
    batch = collate_causal([[5, 6, 7, 8], [5, 9]], [[-100, -100, 7, 8], [-100, 9]], pad_token_id=1)
    assert batch["input_ids"].tolist() == [[5, 6, 7, 8], [5, 9, 1, 1]]
    assert batch["labels"].tolist() == [[-100, 7, 8, -100], [9, -100, -100, -100]]  # what each position predicts
    assert batch["prompt_labels"].tolist() == [[6, -100, -100, -100], [-100, -100, -100, -100]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1], [1, 1, 0, 0]]


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

    # pasero-serve: OpenAI's chat route renders the same template; the openai client gets the trained answer
    import openai

    from tests.serving.conftest import start_server

    with start_server([best]) as server:
        client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)
        history = [{"role": "user", "content": "Who found favor?"}, {"role": "assistant", "content": "Noah found favor."},
                   {"role": "user", "content": "In whose eyes?"}]
        reply = client.chat.completions.create(model="model_best", messages=history, max_tokens=20, temperature=0)
    assert reply.choices[0].message.content == "In the eyes of the Lord."


def test_lora_run_resumes_and_its_adapter_decodes_on_the_base_model(tmp_path, llama_dir, prompt_data, capsys):
    import torch
    from safetensors.torch import load_file

    from pasero_hf.cli.decode import main as decode
    from pasero_hf.cli.train import main as train
    from pasero_hf.generation import TextGenerator
    from pasero_hf.training.config import load_training_config
    from pasero_hf.training.lm import prepare_lm_trainer
    from tests.lm.conftest import lm_options

    output = tmp_path / "lora"
    options = ["--task", "lm", "-s", "en", "-t", "es", "--lora-rank", "8", "--lora-alpha", "16",
               "--prompt-template", "Translate {src_lang} to {tgt_lang}: {source} =", "--prompt-loss", "0.5",
               *lm_options(llama_dir, prompt_data, output, "--lr", "0.01", "--keep-last", "2")]
    assert train([*options, "--max-steps", "20"]) == 0
    assert (output / "model_best" / "adapter_config.json").is_file()  # LoRA weights only (save_trainable_only)
    assert not (output / "model_best" / "config.json").is_file()
    # --reset-optimizer: checkpoint-20's LoRA weights in a run that starts its step, optimizer and data over
    trainer, _, resume = prepare_lm_trainer(load_training_config([*options, "--max-steps", "20", "--reset-optimizer"]))
    saved = load_file(str(output / "checkpoint-20" / "adapter_model.safetensors"))
    loaded = {k.replace(".default", ""): v for k, v in trainer.model.state_dict().items() if "lora_" in k}
    assert resume is None and saved.keys() == loaded.keys()
    assert all(torch.equal(saved[key], loaded[key]) for key in saved)
    # the same command continues from checkpoint-20; now model_best/model_last are merged, standalone models
    assert train([*options, "--max-steps", "30", "--no-save-trainable-only"]) == 0
    log = (output / "train.log").read_text()
    assert "resuming from" in log and "checkpoint-20" in log and "saved checkpoint-30" in log
    assert "202,048 parameters (17,408 trainable)" in log  # LoRA rank 8 on the 7 projections of 2 layers
    # prompt_loss 0.5: the loss adds half the prompt tokens' cross-entropy to the targets' (nll_loss)
    history = json.loads((output / "checkpoint-30" / "trainer_state.json").read_text())["log_history"]
    logged = next(entry for entry in history if "nll_loss" in entry)
    assert logged["loss"] > logged["nll_loss"] * 1.2

    adapter = output / "checkpoint-30"  # an adapter directory (with the tokenizer and inference.yaml)
    generator = TextGenerator.from_pretrained(adapter, beam_size=1)  # loads its base model by itself
    assert generator.prompts.prompt_template == "Translate {src_lang} to {tgt_lang}: {source} ="
    expected = [nbest[0]["detok"] for nbest in generator.decode(*[s for s, _ in PAIRS], source_lang="en",
                                                                 target_lang="es")]
    assert sum(out == tgt for out, (_, tgt) in zip(expected, PAIRS)) >= 2, expected  # 30 LoRA steps on random weights
    source = tmp_path / "test.en"
    source.write_text("".join(s + "\n" for s, _ in PAIRS), encoding="utf-8")
    for model in ([str(llama_dir), "--adapter", str(adapter)], [str(llama_dir), "--adapter", str(adapter),
                                                                 "--merge-adapter"], [str(output / "model_last")]):
        capsys.readouterr()
        assert decode([*model, "-s", "en", "-t", "es", "-i", str(source), "--beam-size", "1", "--quiet"]) == 0
        assert capsys.readouterr().out.splitlines() == expected, model
    assert (output / "model_last" / "config.json").is_file()


@pytest.mark.parametrize("case", ["unknown_role", "no_content", "no_source", "template_name", "not_causal"])
def test_bad_llm_inputs_stop_before_training_with_file_and_line(case, tmp_path, llama_dir, dialogue_data, capsys):
    from pasero_hf.cli.train import main as train
    from tests.lm.conftest import lm_options

    data = tmp_path / "data"
    data.mkdir()
    lines = (dialogue_data / "train.jsonl").read_text().splitlines()
    task, model, extra = "dialogue", llama_dir, ["--chat-template", "chatml"]
    if case == "unknown_role":
        lines[2] = json.dumps({"messages": [{"role": "user", "content": "Hi"}, {"role": "bot", "content": "Yo"}]})
        expected = "train.jsonl:3: message 1 has unknown role 'bot' (expected one of system, user, assistant)"
    elif case == "no_content":
        lines[1] = json.dumps({"messages": [{"role": "user"}, {"role": "assistant", "content": "Yo"}]})
        expected = "train.jsonl:2: message 0 (user) has no text 'content'"
    elif case == "no_source":
        task, extra = "lm", ["-s", "en", "-t", "es", "--prompt-template", "{src_lang} to {tgt_lang}:"]
        expected = "prompt_template: '{src_lang} to {tgt_lang}:' has no {source} field"
    elif case == "template_name":
        extra = ["--chat-template", "vicuna"]
        expected = "chat_template: unknown template 'vicuna': choose among chatml, zephyr, llama-2, mistral"
    else:
        from transformers import T5Config

        model = tmp_path / "t5"
        T5Config(d_model=8, num_layers=1, num_heads=1, d_ff=8, vocab_size=100).save_pretrained(model)
        expected = "(t5) is not a causal language model: task dialogue trains AutoModelForCausalLM models"
    (data / "train.jsonl").write_text("\n".join(lines) + "\n")
    (data / "valid.jsonl").write_text("\n".join(lines) + "\n")
    output = tmp_path / "run"
    status = train(["--task", task, *lm_options(model, data, output, "--train-corpora", "train.jsonl",
                                                "--valid-corpora", "valid.jsonl", *extra)])
    err = capsys.readouterr().err
    assert status == 2 and expected in err, err
    assert not output.exists()  # nothing written, nothing trained on half-read data


def test_dry_run_checks_model_and_corpora_and_writes_nothing(tmp_path, llama_dir, dialogue_data, capsys):
    from pasero_hf.cli.train import main as train
    from tests.lm.conftest import lm_options

    output = tmp_path / "run"
    assert train(["--task", "dialogue", "--chat-template", "chatml", "--dry-run",
                  *lm_options(llama_dir, dialogue_data, output, "--train-corpora", "train.jsonl",
                              "--valid-corpora", "valid.jsonl")]) == 0
    out = capsys.readouterr().out
    assert "(llama, " in out and "'chat_template': 'chatml'" in out and "'stop_sequences': ['<|im_end|>']" in out
    # chatml renders the two-turn conversation in more than max_len (64) tokens: skipped in training, truncated in
    # validation
    assert "train train: 3 sequences" in out and "valid valid: 4 sequences" in out
    assert not output.exists()
