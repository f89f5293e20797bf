"""Model cards rendered from model_cards/: metadata (checked locally and by the test Hub's validate-yaml), body
sections, scores taken from the training run, pasero-card, and templates with a missing field."""

import re

import pytest
import yaml
from huggingface_hub import ModelCard

from pasero_hf.cli.card import main as card_main
from pasero_hf.hub import CardError, render_model_card, write_model_card
from pasero_hf.hub.cards import TEMPLATES, TEMPLATES_DIR, check_card, read_train_log

SECTIONS = ["## Intended use", "## Languages and pairs", "## Architecture and size", "## Training data and budget",
            "## Evaluation", "## How to use", "## Limitations", "## Citation"]


@pytest.fixture(scope="module")
def trained_run(tiny_data_dir, tiny_tokenizer_dir, tmp_path_factory):
    """Six training steps of a tiny model (validation every 3): MODEL_DIR with train.log, training.yaml, model_best."""
    from pasero_hf.training.config import load_training_config
    from pasero_hf.training.run import train
    from tests.training.conftest import tiny_config_dict

    root = tmp_path_factory.mktemp("card-run")
    config = root / "config.yaml"
    config.write_text(yaml.safe_dump(tiny_config_dict(tiny_data_dir, tiny_tokenizer_dir, root / "run")))
    return train(load_training_config(["-c", str(config)]))


def header(card) -> dict:
    return yaml.safe_load(re.match(r"^---\n(.*?)\n---", str(card), re.S).group(1))


def test_card_of_a_trained_model(trained_run, hub, monkeypatch):
    card = render_model_card(trained_run.best_dir, "pasero/tiny-run", datasets=["bible-en-es"])
    meta = header(card)
    assert meta["language"] == ["en", "es"] and meta["license"] == "apache-2.0"
    assert meta["library_name"] == "pasero-hf" and meta["pipeline_tag"] == "translation"
    assert "pasero" in meta["tags"] and meta["datasets"] == ["bible-en-es"]
    # model-index: the validation BLEU/chrF of the best validation in train.log
    _, valid = read_train_log(trained_run.model_dir)
    best = max(valid, key=lambda entry: entry["eval_chrf"])
    results = {(r.dataset_name, r.dataset_split, r.metric_type): r.metric_value for r in card.data.eval_results}
    assert results == {("valid.en-es", "validation", "bleu"): round(best["eval_valid.en-es_bleu"], 2),
                       ("valid.en-es", "validation", "chrf"): round(best["eval_valid.en-es_chrf"], 2)}
    assert all(r.task_type == "translation" for r in card.data.eval_results)
    text = str(card)
    for section in SECTIONS:
        assert section in text, section
    assert f"Steps: {trained_run.global_step}" in text and "pasero-decode pasero/tiny-run" in text
    assert "trust_remote_code=True" in text and "TextGenerator.from_pretrained(\"pasero/tiny-run\")" in text
    assert "pasero-serve pasero/tiny-run" in text and "@misc{pasero" in text
    check_card(card)
    # the (test) Hub's metadata check, through huggingface_hub's own call
    monkeypatch.setattr("huggingface_hub.constants.ENDPOINT", hub.url)
    card.validate("model")
    bad = ModelCard(str(card).replace("pipeline_tag: translation", "pipeline_tag: translationz"))
    with pytest.raises(ValueError, match="pipeline_tag"):
        bad.validate("model")


def test_pasero_card_cli_writes_readme_with_test_scores(trained_run, tiny_data_dir, capsys):
    model_dir = trained_run.best_dir
    assert card_main([str(model_dir), "--repo-id", "pasero/tiny-run", "--test", str(tiny_data_dir / "valid"),
                      "--base-model", "pasero/tiny-base"]) == 0
    card = ModelCard.load(model_dir / "README.md")
    assert card.data.base_model == "pasero/tiny-base"
    test_results = [r for r in card.data.eval_results if r.dataset_split == "test"]
    assert {r.metric_type for r in test_results} == {"bleu", "chrf"} and test_results[0].dataset_name == "valid"
    assert (model_dir / "eval_results.json").is_file()
    assert "| test | valid |" in str(card)


def test_languages_unknown_and_missing_template_fields_are_errors(tiny_model_dir, tmp_path, capsys):
    no_languages = tmp_path / "model"
    import shutil

    shutil.copytree(tiny_model_dir, no_languages, ignore=shutil.ignore_patterns("inference.yaml"))
    with pytest.raises(CardError, match=f"{no_languages}: its languages are unknown.*--lang-pairs"):
        render_model_card(no_languages, "pasero/x")
    assert write_model_card(no_languages, "pasero/x", lang_pairs=["en-es"]).is_file()
    template = tmp_path / "card.md"
    template.write_text("---\n{{ card_data }}\n---\n# {{ model_name }}\nTrained by {{ author }}.\n")
    with pytest.raises(CardError, match=f"model card template {template}: 'author' is undefined"):
        render_model_card(tiny_model_dir, "pasero/x", template_path=template)
    assert card_main([str(tiny_model_dir), "--template", str(template)]) == 1
    assert "'author' is undefined" in capsys.readouterr().err
    assert card_main([str(tmp_path / "nowhere")]) == 1
    assert "no config.json" in capsys.readouterr().err


def test_every_kind_has_a_template():
    assert sorted(p.name for p in TEMPLATES_DIR.glob("*.md")) == sorted(TEMPLATES.values())


def test_pruned_nllb_moe_card_and_push(hub, tmp_path):
    """A pruned NLLB-MoE directory (pruning.json) gets the pruned template, NLLB's license and ISO 639-3 codes."""
    import json

    from huggingface_hub import HfApi

    from pasero_hf.hub import push_to_hub
    from tests.hub.conftest import TOKEN
    from tests.moe.conftest import tiny_moe_model

    model_dir = tmp_path / "pruned"
    tiny_moe_model().save_pretrained(model_dir)
    (model_dir / "pruning.json").write_text(json.dumps({"lang_pairs": ["eng_Latn-spa_Latn", "fra_Latn-spa_Latn"],
                                                        "metric": "importance", "kept_experts": {}}))
    card = render_model_card(model_dir, "pasero/nllb-moe-pruned", base_model="facebook/nllb-moe-54b")
    meta = header(card)
    assert meta["language"] == ["eng", "spa", "fra"] and meta["license"] == "cc-by-nc-4.0"
    assert meta["base_model"] == "facebook/nllb-moe-54b" and "pruned" in meta["tags"]
    assert "Koishekenov" in str(card) and "eng_Latn-spa_Latn, fra_Latn-spa_Latn" in str(card)
    push_to_hub(model_dir, "pasero/nllb-moe-pruned", base_model="facebook/nllb-moe-54b", endpoint=hub.url,
                token=TOKEN)
    files = set(HfApi(endpoint=hub.url, token=TOKEN).list_repo_files("pasero/nllb-moe-pruned"))
    assert {"model.safetensors", "config.json", "pruning.json", "README.md"} <= files
