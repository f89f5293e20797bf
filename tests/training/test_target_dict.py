"""Training with Pasero's `target_dict` (separate source and target vocabularies): Pasero's per-language layout
(one bpecodes, dict.en.txt and dict.es.txt from `pasero-build-tokenizer --vocab-path 'dict.{lang}.txt'`), the data
encoded side by side, the model sized by both dictionaries, exact resume, decoding, and the errors of bad input."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from pasero_hf.cli.train import main as train_main
from pasero_hf.data.config_parsing import ConfigError
from pasero_hf.generation.text_generator import TextGenerator
from pasero_hf.tokenization.dictionary import Dictionary
from pasero_hf.training.config import load_training_config
from pasero_hf.training.run import finish_training, prepare_trainer, train
from tests.training.conftest import tiny_config_dict


@pytest.fixture(scope="module")
def vocab_dir(tiny_data_dir, tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("pasero-vocabs")
    subprocess.run(
        [str(Path(sys.executable).parent / "pasero-build-tokenizer"), "-i", str(tiny_data_dir / "train.en"),
         str(tiny_data_dir / "train.es"), "-o", "bpecodes", "-d", "dict.txt", "-s", "300", "--vocab-path",
         "dict.{lang}.txt", "--dict-padding-factor", "1"],
        cwd=directory, check=True, capture_output=True, timeout=120)
    return directory


def write_config(tiny_data_dir, vocab_dir, root: Path, **overrides) -> Path:
    content = tiny_config_dict(
        tiny_data_dir, vocab_dir, root / "model", tokenizer="pasero", tokenizer_path=str(vocab_dir / "bpecodes"),
        dict=str(vocab_dir / "dict.{src}.txt"), target_dict=str(vocab_dir / "dict.{tgt}.txt"),
        shared_embeddings=False, save_interval=3, keep_last=2)
    content["model_args"]["dropout"] = 0.1  # the RNG state matters for exact resume
    content.update(overrides)
    content = {key: value for key, value in content.items() if value is not None}
    path = root / "config.yaml"
    path.write_text(yaml.safe_dump(content), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def trained(tiny_data_dir, vocab_dir, tmp_path_factory):
    """A 6-step run; returns (config path, model dir, first training batch)."""
    root = tmp_path_factory.mktemp("target-dict-run")
    path = write_config(tiny_data_dir, vocab_dir, root)
    config = load_training_config(["-c", str(path)])
    trainer, stop, resume = prepare_trainer(config)
    finish_training(config, trainer, stop, resume)
    batch = next(iter(trainer.get_train_dataloader()))  # after training: taking it before would shift the stream
    return path, root / "model", batch


def test_data_and_model_use_both_dictionaries(trained, tiny_data_dir, vocab_dir):
    _, model_dir, batch = trained
    source_dict = Dictionary.from_file(vocab_dir / "dict.en.txt")
    target_dict = Dictionary.from_file(vocab_dir / "dict.es.txt")
    assert len(source_dict) != len(target_dict)
    config = yaml.safe_load((model_dir / "model_last" / "config.json").read_text())
    assert (config["encoder_vocab_size"], config["vocab_size"]) == (len(source_dict), len(target_dict))
    assert config["shared_embeddings"] is False
    weights = load_file(str(model_dir / "model_last" / "model.safetensors"))
    assert weights["model.encoder.embed_tokens.weight"].shape[0] == len(source_dict)
    assert weights["model.decoder.embed_tokens.weight"].shape[0] == len(target_dict)

    # a training batch: sources in source ids, labels in target ids (each decodes to a line of its side)
    sources = set((tiny_data_dir / "train.en").read_text(encoding="utf-8").splitlines())
    targets = set((tiny_data_dir / "train.es").read_text(encoding="utf-8").splitlines())
    from pasero_hf.tokenization.tokenization_pasero import PaseroTokenizer

    tokenizer = PaseroTokenizer.from_pretrained(model_dir / "model_last")
    for source_ids, label_ids in zip(batch["input_ids"].tolist()[:4], batch["labels"].tolist()[:4]):
        source = tokenizer.decode([i for i in source_ids if i != 1], skip_special_tokens=True,
                                  use_source_tokenizer=True)
        target = tokenizer.decode([i for i in label_ids if i >= 0], skip_special_tokens=True)
        assert source in sources and target in targets
        assert 3 not in label_ids[:-1] or "<unk>" in target  # in-vocabulary text, target side
    assert (model_dir / "model_last" / "target_dict.txt").read_bytes() == (vocab_dir / "dict.es.txt").read_bytes()
    assert (model_dir / "model_last" / "dict.txt").read_bytes() == (vocab_dir / "dict.en.txt").read_bytes()
    assert yaml.safe_load((model_dir / "training.yaml").read_text())["target_dict"].endswith("dict.{tgt}.txt")


def test_exact_resume(trained, tiny_data_dir, vocab_dir, tmp_path):
    """Stopped after 3 steps and rerun to 6: the same weights as the uninterrupted run."""
    _, straight, _ = trained
    path = write_config(tiny_data_dir, vocab_dir, tmp_path, max_steps=3)
    train(load_training_config(["-c", str(path)]))
    train(load_training_config(["-c", str(path), "--max-steps", "6"]))
    expected = load_file(str(straight / "checkpoint-6" / "model.safetensors"))
    resumed = load_file(str(tmp_path / "model" / "checkpoint-6" / "model.safetensors"))
    assert expected.keys() == resumed.keys()
    for key in expected:
        assert torch.equal(expected[key], resumed[key]), key


def test_decoding_reads_outputs_with_the_target_dictionary(trained, vocab_dir):
    """TextGenerator on the run's directory (pasero-decode MODEL_DIR): source tokens from the source dictionary,
    output tokens (and teacher-forced references) from the target one."""
    _, model_dir, _ = trained
    generator = TextGenerator.from_pretrained(model_dir, beam_size=2, max_output_len=8)
    source, reference = "And God said", "Y dijo Dios"
    [[output, *_]] = generator.decode(source)
    source_dict = Dictionary.from_file(vocab_dir / "dict.en.txt")
    target_dict = Dictionary.from_file(vocab_dir / "dict.es.txt")
    source_ids = generator.tokenizer(source)["input_ids"]
    assert output["src_tokens"] == [source_dict.tokens[i] for i in source_ids]
    assert all(token in target_dict for token in output["tokens"])
    [[forced]] = generator.decode(source, teacher_forcing=[reference])
    expected = generator.tokenizer(text_target=reference)["input_ids"]
    assert forced["tokens"] == [target_dict.tokens[i] for i in expected]
    assert forced["detok"] == reference


def test_bad_target_dict_is_named_before_anything_is_written(tiny_data_dir, vocab_dir, tmp_path, capsys):
    path = write_config(tiny_data_dir, vocab_dir, tmp_path, target_dict=str(vocab_dir / "dict.{tgt}.missing"))
    assert train_main(["-c", str(path)]) == 2
    assert "target_dict: " + str(vocab_dir / "dict.es.missing") + " (from" in capsys.readouterr().err
    assert not (tmp_path / "model").exists()

    # shared embeddings (Pasero's default) cannot index two dictionaries: refused, also by --dry-run
    path = write_config(tiny_data_dir, vocab_dir, tmp_path, shared_embeddings=None)
    for extra in ([], ["--dry-run"]):
        assert train_main(["-c", str(path), *extra]) == 2
        error = capsys.readouterr().err
        assert "target_dict: " + str(vocab_dir / "dict.{tgt}.txt") + " gives the target side its own vocabulary" in error
        assert "shared_embeddings is true, the default of arch 'transformer'" in error
    assert train_main(["-c", str(path), "--shared-embeddings"]) == 2
    assert "shared_embeddings is true, set" in capsys.readouterr().err
    assert not (tmp_path / "model").exists()

    # a Hugging Face tokenizer directory has its own vocabulary
    path = write_config(tiny_data_dir, vocab_dir, tmp_path, tokenizer="hf", tokenizer_path=str(vocab_dir))
    with pytest.raises(ConfigError, match=r"target_dict: needs tokenizer pasero or sentencepiece"):
        train(load_training_config(["-c", str(path)]))

    # the other tasks keep their model's tokenizer: refused, not ignored
    path = write_config(tiny_data_dir, vocab_dir, tmp_path)
    for task in ("lm", "dialogue", "st"):
        with pytest.raises(ConfigError, match=rf"target_dict: .* applies to task mt .* task {task} keeps"):
            load_training_config(["-c", str(path), "--task", task])


def test_dry_run_shows_the_resolved_target_dict(tiny_data_dir, vocab_dir, tmp_path, capsys):
    path = write_config(tiny_data_dir, vocab_dir, tmp_path)
    assert train_main(["-c", str(path), "--dry-run"]) == 0
    report = yaml.safe_load(capsys.readouterr().out.split("\n\n# corpora")[0])
    assert report["target_dict"] == str(vocab_dir / "dict.es.txt")
    assert report["dict"] == str(vocab_dir / "dict.en.txt")
    assert not (tmp_path / "model").exists()
