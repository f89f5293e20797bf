"""End-to-end training of a tiny Pasero model on a slice of the Bible corpus (single process, in-process)."""

import shutil
import struct

import pytest
import torch
import yaml
from safetensors.torch import load_file

from pasero_hf.training import checkpoints
from pasero_hf.training.config import load_training_config
from pasero_hf.training.run import prepare_trainer, train


def weights(directory):
    return load_file(str(directory / "model.safetensors"))


def assert_same_weights(a: dict, b: dict, atol: float = 0.0):
    assert a.keys() == b.keys()
    for key in a:
        assert torch.allclose(a[key], b[key], atol=atol, rtol=0), key


@pytest.fixture(scope="module")
def straight_run(tiny_data_dir, tiny_tokenizer_dir, tmp_path_factory):
    """Six uninterrupted steps (validation and checkpoint every 3)."""
    from tests.training.conftest import tiny_config_dict

    root = tmp_path_factory.mktemp("straight")
    path = root / "config.yaml"
    path.write_text(yaml.safe_dump(tiny_config_dict(tiny_data_dir, tiny_tokenizer_dir, root / "model")))
    result = train(load_training_config(["-c", str(path)]))
    return path, result


def test_training_writes_checkpoints_logs_and_loadable_models(straight_run):
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    config_path, result = straight_run
    model_dir = result.model_dir
    assert result.global_step == 6
    # keep_last=1: only the newest complete checkpoint remains, next to model_best and model_last
    assert [p.name for p in checkpoints.complete_checkpoints(model_dir)] == ["checkpoint-6"]
    assert (model_dir / "checkpoint-6" / "optimizer.pt").is_file()
    assert checkpoints.read_data_state(model_dir / "checkpoint-6")["steps"] == 6
    for name in ("model_best", "model_last"):
        assert not (model_dir / name / "optimizer.pt").exists()
        inference = yaml.safe_load((model_dir / name / "inference.yaml").read_text())
        assert inference["source_langs"] == ["en"] and inference["target_langs"] == ["es"]
    assert_same_weights(weights(model_dir / "model_last"), weights(model_dir / "checkpoint-6"))

    # training.yaml is the resolved configuration and can be trained from again
    resolved = load_training_config(["-c", str(model_dir / "training.yaml")])
    assert resolved.to_dict() == load_training_config(["-c", str(config_path)]).to_dict()

    log = (model_dir / "train.log").read_text()
    assert "train | step 2 | loss" in log and "tgt_tokens_per_s" in log and "grad_norm" in log
    assert "valid | step 3 |" in log and "eval_chrf" in log
    with open(model_dir / "training_curve.png", "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
        f.read(8)
        width, height = struct.unpack(">II", f.read(8))
        assert width > 100 and height > 100

    model = AutoModelForSeq2SeqLM.from_pretrained(model_dir / "model_best")
    tokenizer = AutoTokenizer.from_pretrained(model_dir / "model_best")
    inputs = tokenizer(["In the beginning God created the heaven and the earth."], return_tensors="pt")
    output = model.generate(**inputs, max_new_tokens=5, num_beams=1)
    assert output.shape[0] == 1 and output.shape[1] >= 2


def test_rerunning_the_same_command_resumes_exactly(straight_run, tmp_path):
    """3 steps, then the same command with max_steps 6: same weights as 6 uninterrupted steps (optimizer, schedule,
    step and data position restored)."""
    config_path, straight = straight_run
    argv = ["-c", str(config_path), "--model-dir", str(tmp_path / "model")]
    first = train(load_training_config(argv + ["--max-steps", "3"]))
    assert first.global_step == 3
    second = train(load_training_config(argv))
    assert second.global_step == 6
    assert "resuming from" in (tmp_path / "model" / "train.log").read_text()
    assert_same_weights(weights(second.last_dir), weights(straight.last_dir), atol=1e-6)


def test_reset_ignores_existing_checkpoints(straight_run, tmp_path):
    config_path, straight = straight_run
    model_dir = tmp_path / "model"
    shutil.copytree(straight.model_dir, model_dir)
    trainer, _, resume = prepare_trainer(load_training_config(
        ["-c", str(config_path), "--model-dir", str(model_dir), "--reset"]))
    assert resume is None
    trainer, _, resume = prepare_trainer(load_training_config(["-c", str(config_path), "--model-dir", str(model_dir)]))
    assert resume == model_dir / "checkpoint-6"


def test_incomplete_checkpoint_is_never_resumed(straight_run, tmp_path):
    """A save interrupted before its completion marker (and a model_last swap cut between its renames)."""
    config_path, straight = straight_run
    model_dir = tmp_path / "model"
    shutil.copytree(straight.model_dir, model_dir)
    broken = model_dir / "checkpoint-9"
    shutil.copytree(model_dir / "checkpoint-6", broken)
    (broken / checkpoints.COMPLETE_MARKER).unlink()
    (broken / "model.safetensors").write_bytes(b"truncated")
    (model_dir / "model_last").rename(model_dir / "model_last.old")
    _, _, resume = prepare_trainer(load_training_config(["-c", str(config_path), "--model-dir", str(model_dir)]))
    assert resume == model_dir / "checkpoint-6"
    assert not broken.exists()
    assert (model_dir / "model_last" / "model.safetensors").is_file()


def test_ckpt_initializes_weights_only_and_continue_restores_the_step(straight_run, tmp_path):
    config_path, straight = straight_run
    ckpt = straight.model_dir / "checkpoint-6"
    argv = ["-c", str(config_path), "--model-dir", str(tmp_path / "a"), "--ckpt", str(ckpt)]
    trainer, _, resume = prepare_trainer(load_training_config(argv))
    assert resume is None
    assert_same_weights({k: v for k, v in trainer.model.state_dict().items() if k in weights(ckpt)}, weights(ckpt))

    argv = ["-c", str(config_path), "--model-dir", str(tmp_path / "b"), "--ckpt", str(ckpt), "--continue",
            "--max-steps", "7"]
    result = train(load_training_config(argv))
    assert result.global_step == 7  # one step after the checkpoint's 6


def test_time_budget_stops_cleanly_with_a_checkpoint(straight_run, tmp_path, capfd):
    config_path, _ = straight_run
    result = train(load_training_config(["-c", str(config_path), "--model-dir", str(tmp_path / "m"),
                                         "--max-steps", "1000", "--max-time", "0.0001"]))
    assert result.stop_reason == "time budget"
    assert result.global_step == 1
    assert checkpoints.latest_checkpoint(tmp_path / "m").name == "checkpoint-1"
    assert "valid | step 1 |" in (tmp_path / "m" / "train.log").read_text()  # final validation
    # the progress bar counts the time budget, not the 1000-step cap
    progress = capfd.readouterr().err
    assert "time budget" in progress and "step 1/1000" in progress and "/1000 [" not in progress


def test_adapters_train_only_adapter_weights(straight_run, tmp_path):
    config_path, straight = straight_run
    argv = ["-c", str(config_path), "--model-dir", str(tmp_path / "m"), "--arch", "adapter_transformer",
            "--ckpt", str(straight.model_dir / "model_last"), "--decoder-adapters-by", "target_lang",
            "--model-args", "{embed_dim: 32, encoder_layers: 2, decoder_layers: 2, encoder_attention_heads: 2, "
            "decoder_attention_heads: 2, encoder_ffn_dim: 64, decoder_ffn_dim: 64, dropout: 0.0, "
            "encoder_adapter_dim: 0, decoder_adapter_dim: 8}", "--max-steps", "2", "--valid-interval", "2"]
    trainer, _, _ = prepare_trainer(load_training_config(argv))
    trainable = {n for n, p in trainer.model.named_parameters() if p.requires_grad}
    assert trainable and all(".adapters.lang:es." in n for n in trainable)
    trainer.train()
    optimized = {id(p) for group in trainer.optimizer.param_groups for p in group["params"]}
    assert optimized == {id(p) for p in trainer.model.parameters() if p.requires_grad}
    base = weights(straight.model_dir / "model_last")
    after = {k: v for k, v in trainer.model.state_dict().items()}
    for key, value in base.items():
        assert torch.equal(after[key], value), key
    assert any(not torch.equal(v, torch.zeros_like(v)) for k, v in after.items() if "adapters" in k)


def test_lora_trains_through_peft(straight_run, tmp_path):
    config_path, straight = straight_run
    argv = ["-c", str(config_path), "--model-dir", str(tmp_path / "m"), "--lora-rank", "4",
            "--ckpt", str(straight.model_dir / "model_last"), "--max-steps", "2", "--valid-interval", "2"]
    result = train(load_training_config(argv))
    assert result.global_step == 2
    saved = load_file(str(result.last_dir / "adapter_model.safetensors"))
    assert saved and all("lora_" in key for key in saved)
    assert not (result.last_dir / "model.safetensors").exists()
    # --reset-optimizer on a LoRA run: its checkpoints hold the adapter alone, which is loaded onto the new model
    trainer, _, resume = prepare_trainer(load_training_config(argv + ["--reset-optimizer"]))
    assert resume is None and trainer.train_dataset.steps == 0
    in_checkpoint = load_file(str(result.model_dir / "checkpoint-2" / "adapter_model.safetensors"))
    loaded = {key.replace(".default", ""): value for key, value in trainer.model.state_dict().items() if "lora_" in key}
    assert_same_weights(loaded, in_checkpoint)


def test_adapter_checkpoints_hold_only_adapter_weights(straight_run, tmp_path):
    config_path, straight = straight_run
    argv = ["-c", str(config_path), "--model-dir", str(tmp_path / "m"), "--arch", "adapter_transformer",
            "--ckpt", str(straight.model_dir / "model_last"), "--encoder-adapters", "lang:en->es",
            "--model-args", "{embed_dim: 32, encoder_layers: 2, decoder_layers: 2, encoder_attention_heads: 2, "
            "decoder_attention_heads: 2, encoder_ffn_dim: 64, decoder_ffn_dim: 64, dropout: 0.0, "
            "encoder_adapter_dim: 8, decoder_adapter_dim: 0}", "--max-steps", "2", "--valid-interval", "2"]
    result = train(load_training_config(argv))
    in_checkpoint = weights(result.model_dir / "checkpoint-2")
    assert in_checkpoint and all(".adapters.lang:en->es." in key for key in in_checkpoint)
    complete = weights(result.last_dir)
    assert set(in_checkpoint) < set(complete)
    assert_same_weights({k: complete[k] for k in in_checkpoint}, in_checkpoint)
    # --reset-optimizer: the adapter weights of the checkpoint onto the base of --ckpt, with a new optimizer
    trainer, _, resume = prepare_trainer(load_training_config(argv + ["--reset-optimizer"]))
    assert resume is None and trainer.train_dataset.steps == 0
    state = trainer.model.state_dict()
    assert_same_weights({k: state[k] for k in complete}, complete)
    resumed = train(load_training_config(argv[:-4] + ["--max-steps", "3", "--valid-interval", "2"]))
    assert resumed.global_step == 3


def test_activation_checkpointing_gives_the_same_training(straight_run, tmp_path):
    config_path, straight = straight_run
    trainer, _, _ = prepare_trainer(load_training_config(["-c", str(config_path), "--model-dir",
                                                          str(tmp_path / "m"), "--checkpoint-activations"]))
    trainer.train()
    assert trainer.model.is_activation_checkpointing
    assert_same_weights({k: v for k, v in trainer.model.state_dict().items() if k in weights(straight.last_dir)},
                        weights(straight.last_dir), atol=1e-5)


def test_bfloat16_mixed_precision_trains(straight_run, tmp_path):
    config_path, _ = straight_run
    result = train(load_training_config(["-c", str(config_path), "--model-dir", str(tmp_path / "m"),
                                         "--dtype", "bfloat16", "--max-steps", "2", "--valid-interval", "2"]))
    log = (tmp_path / "m" / "train.log").read_text()
    loss = float(log.split("train | step 2 | loss ")[1].split(" ")[0])
    assert result.global_step == 2 and 0 < loss < 20


def test_patience_stops_after_validations_without_improvement(straight_run, tmp_path):
    """With a learning rate too small to move any weight, the validation loss cannot improve after the first one."""
    config_path, _ = straight_run
    result = train(load_training_config(["-c", str(config_path), "--model-dir", str(tmp_path / "m"),
                                         "--lr-scheduler", "constant", "--lr", "1e-30", "--max-steps", "100",
                                         "--valid-interval", "2", "--patience", "2",
                                         "--early-stopping-metric", "loss"]))
    assert result.global_step == 6  # best at step 2, no improvement at 4 and 6


def test_patience_counter_survives_a_resume(straight_run, tmp_path):
    """Stopped after one validation without improvement, then resumed: one more such validation ends the run (the
    counter of validations without improvement is saved in the checkpoint, not restarted at 0)."""
    config_path, _ = straight_run
    options = ["-c", str(config_path), "--model-dir", str(tmp_path / "m"), "--lr-scheduler", "constant",
               "--lr", "1e-30", "--valid-interval", "2", "--save-interval", "2", "--patience", "2",
               "--early-stopping-metric", "loss"]
    assert train(load_training_config([*options, "--max-steps", "4"])).global_step == 4  # best at 2, none at 4
    result = train(load_training_config([*options, "--max-steps", "100"]))
    assert result.global_step == 6  # no improvement at 6: the second one in a row


def test_reset_optimizer_keeps_only_the_weights(straight_run, tmp_path):
    config_path, straight = straight_run
    model_dir = tmp_path / "model"
    shutil.copytree(straight.model_dir, model_dir)
    trainer, _, resume = prepare_trainer(load_training_config(
        ["-c", str(config_path), "--model-dir", str(model_dir), "--reset-optimizer"]))
    assert resume is None
    assert trainer.train_dataset.steps == 0
    last = weights(model_dir / "checkpoint-6")
    assert_same_weights({k: v for k, v in trainer.model.state_dict().items() if k in last}, last)
