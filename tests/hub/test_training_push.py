"""Fine-tuning a Hub model (`--ckpt REPO_ID`) and `push_to_hub: REPO_ID` at the end of training: model_best, its
card (base_model, the run's validation scores), training.yaml and the training curve reach the Hub in one commit."""

import sys

import pytest
import yaml
from huggingface_hub import HfApi, ModelCard

from tests.hub.conftest import REPO_ROOT, TOKEN, repo_head


@pytest.mark.slow
def test_fine_tune_a_hub_model_and_push_model_best(hub, hub_env, pushed_tiny, tiny_data_dir, fixtures_dir, tmp_path):
    import subprocess

    from pasero_hf.hub.cards import read_train_log

    tiny = fixtures_dir / "pasero-tiny-en-es"
    config = {
        "data_dir": str(tiny_data_dir), "source_lang": "en", "target_lang": "es",
        "train_corpora": [{"paths": ["train"]}], "valid_corpora": [{"paths": ["valid"]}],
        "tokenizer_path": str(tiny / "bpecodes"), "dict": str(tiny / "dict.txt"), "arch": "transformer",
        "model_args": {"embed_dim": 64, "encoder_layers": 2, "decoder_layers": 2, "encoder_attention_heads": 4,
                       "decoder_attention_heads": 4, "encoder_ffn_dim": 256, "decoder_ffn_dim": 256},
        "batch_size": 512, "max_len": 128, "lr": 0.0005, "warmup": 2, "max_steps": 4, "valid_interval": 2,
        "max_output_len": 20, "valid_max_lines": 4, "model_dir": str(tmp_path / "run"),
        "cache_dir": str(tmp_path / "cache"),
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    command = [sys.executable, str(REPO_ROOT / "recipes" / "train_mt.py"), "-c", str(path), "--ckpt", pushed_tiny,
               "--push-to-hub", "pasero/tiny-en-es-ft"]
    result = subprocess.run(command, env=hub_env, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "initialized the weights from" in result.stderr + result.stdout
    assert "pushed: " in result.stdout

    api = HfApi(endpoint=hub.url, token=TOKEN)
    files = set(api.list_repo_files("pasero/tiny-en-es-ft"))
    assert {"model.safetensors", "config.json", "training.yaml", "inference.yaml", "training_curve.png",
            "README.md", "modeling_pasero.py", "bpecodes", "dict.txt"} <= files
    card = ModelCard.load(api.hf_hub_download("pasero/tiny-en-es-ft", "README.md"))
    assert card.data.base_model == pushed_tiny and card.data.language == ["en", "es"]
    _, valid = read_train_log(tmp_path / "run")
    best = max(valid, key=lambda entry: entry["eval_chrf"])
    chrf = {r.dataset_name: r.metric_value for r in card.data.eval_results if r.metric_type == "chrf"}
    assert chrf == {"valid.en-es": round(best["eval_valid.en-es_chrf"], 2)}
    assert "Hardware: CPU" in str(card)
    head = repo_head(hub, "pasero/tiny-en-es-ft")
    store = hub.httpd.RequestHandlerClass.store
    assert store.commit_info("model", "pasero/tiny-en-es-ft", head)["summary"].startswith("Upload model_best (step 4)")


def test_push_to_hub_option_is_checked():
    from pasero_hf.training.config import ConfigError, load_training_config

    with pytest.raises(ConfigError, match="push_to_hub: 'not a repo' is not a Hub repo id"):
        load_training_config(["--push-to-hub", "not a repo"])
    assert load_training_config(["--push-to-hub", "me/model"]).run.push_to_hub == "me/model"
