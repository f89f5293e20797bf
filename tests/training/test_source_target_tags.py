"""Pasero's `source_lang_code`, `target_lang_code` and `domain_tag`: the training data carry the tags in Pasero's
order, the model directory records them, and decoding puts them back in the same places (the domain from
`domain=`/`--domain`), so that a trained model is decoded the way it was trained."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pasero_hf.data.valid import build_valid_datasets
from pasero_hf.generation.text_generator import TextGenerator
from pasero_hf.training.config import load_training_config
from pasero_hf.training.run import load_tokenizer, train
from tests.training.conftest import tiny_config_dict

PASERO_TINY = Path(__file__).parents[1] / "fixtures" / "pasero-tiny-en-es"
TAGS = ["<lang:en>", "<lang:es>", "<domain:law>", "<domain:psalms>"]


@pytest.fixture(scope="module")
def tagged_config(tiny_data_dir, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tagged")
    shutil.copy(PASERO_TINY / "bpecodes", root / "bpecodes")
    with open(PASERO_TINY / "dict.txt", encoding="utf-8") as source:
        entries = source.read()
    (root / "dict.txt").write_text(entries + "".join(f"{tag} 0\n" for tag in TAGS), encoding="utf-8")
    data = root / "data"
    data.mkdir()
    for lang in ("en", "es"):  # two corpora of different domains
        lines = (tiny_data_dir / f"train.{lang}").read_text(encoding="utf-8").splitlines(keepends=True)
        (data / f"law.{lang}").write_text("".join(lines[:150]), encoding="utf-8")
        (data / f"psalms.{lang}").write_text("".join(lines[150:]), encoding="utf-8")
        shutil.copy(tiny_data_dir / f"valid.{lang}", data / f"valid.{lang}")
    config = tiny_config_dict(
        data, root, root / "model", tokenizer="pasero", tokenizer_path=str(root / "bpecodes"),
        dict=str(root / "dict.txt"), lang_code=True, source_lang_code=True, target_lang_code=True, domain_tag=True,
        train_corpora=[{"paths": ["law"], "domain": "law"}, {"paths": ["psalms"], "domain": "psalms"}],
        valid_corpora=[{"paths": ["valid"], "domain": "psalms"}], max_steps=2, valid_interval=2)
    path = root / "config.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def test_training_data_carry_the_tags_in_paseros_order(tagged_config):
    config = load_training_config(["-c", str(tagged_config)])
    tokenizer = load_tokenizer(config)
    [valid] = build_valid_datasets(config.data, tokenizer, tokenizer.eos_token_id).values()
    batch = valid.batches[0]
    for source, labels in zip(batch["input_ids"].tolist(), batch["labels"].tolist()):
        assert tokenizer.convert_ids_to_tokens(source[:3]) == ["<lang:es>", "<lang:en>", "<domain:psalms>"]
        assert tokenizer.convert_ids_to_tokens(labels[:1]) == ["<lang:es>"]


def test_the_model_directory_records_the_tags_and_decoding_uses_them(tagged_config, tmp_path):
    result = train(load_training_config(["-c", str(tagged_config), "--model-dir", str(tmp_path / "model")]))
    inference = yaml.safe_load((result.best_dir / "inference.yaml").read_text(encoding="utf-8"))
    assert inference["source_lang_code"] and inference["target_lang_code"] and inference["domain_tag"]
    assert inference["domains"] == ["law", "psalms"]

    generator = TextGenerator.from_pretrained(result.best_dir, beam_size=1, max_output_len=3)
    [[hypothesis]] = generator.decode("In the beginning", domain="law")
    assert hypothesis["src_tokens"][:3] == ["<lang:es>", "<lang:en>", "<domain:law>"]
    assert hypothesis["prompt_tokens"][-1] == "<lang:es>"  # the target code is forced first, as in training
    with pytest.raises(ValueError, match=r"give --domain: one of law, psalms"):
        generator.decode("In the beginning")
    with pytest.raises(ValueError, match=r"unknown domain 'news'"):
        generator.decode("In the beginning", domain="news")

    decode = [str(Path(sys.executable).parent / "pasero-decode"), str(result.model_dir), "-v", "--domain", "psalms",
              "--beam-size", "1", "--max-output-len", "3"]
    verbose = subprocess.run(decode, input="In the beginning\n", capture_output=True, text=True, check=True).stdout
    source_line = next(line for line in verbose.splitlines() if line.startswith("S-0"))
    assert source_line.split("\t")[1].split()[:3] == ["<lang:es>", "<lang:en>", "<domain:psalms>"], verbose
