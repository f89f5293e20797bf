"""Exact resume: a run stopped at any point (SIGINT or SIGTERM mid-step or during validation, kill -9) and rerun
ends with weights bitwise equal to the uninterrupted run's, and logs the same losses after the resume point.

The tiny model has dropout, so the RNG state matters; checkpoints (every 6 steps), validations (every 8) and log
lines (every 4) fall on different steps, so a stop is rarely at a log or checkpoint boundary.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file
from transformers import TrainerCallback

from pasero_hf.training import checkpoints
from pasero_hf.training.config import load_training_config
from pasero_hf.training.run import prepare_trainer, train

REPO = Path(__file__).resolve().parents[2]
MAX_STEPS = 20
TIMING_KEYS = {"eval_runtime", "tgt_tokens_per_s", "train_runtime", "train_samples_per_second",
               "train_steps_per_second", "total_flos", "train_loss", "epoch"}  # epoch: meaningless for an endless stream




def final_state(model_dir: Path) -> tuple[dict, list[dict]]:
    """Weights after MAX_STEPS and the log history without timings."""
    last = model_dir / f"checkpoint-{MAX_STEPS}"
    history = json.loads((last / "trainer_state.json").read_text())["log_history"]
    return load_file(str(last / "model.safetensors")), [
        {k: v for k, v in entry.items() if k not in TIMING_KEYS} for entry in history]


def assert_same_run(straight: Path, resumed: Path) -> None:
    weights, history = final_state(straight)
    resumed_weights, resumed_history = final_state(resumed)
    assert weights.keys() == resumed_weights.keys()
    for key in weights:
        assert torch.equal(weights[key], resumed_weights[key]), (key, (weights[key] - resumed_weights[key]).abs().max())
    assert [e for e in history if "loss" in e] == [e for e in resumed_history if "loss" in e]  # training logs
    assert history == resumed_history  # validation too


@pytest.fixture(scope="module")
def straight(tiny_data_dir, tiny_tokenizer_dir, tmp_path_factory):
    from tests.training.conftest import tiny_config_dict

    root = tmp_path_factory.mktemp("straight")
    content = tiny_config_dict(tiny_data_dir, tiny_tokenizer_dir, root / "model", max_steps=MAX_STEPS,
                               save_interval=6, valid_interval=8, log_interval=4, keep_last=2)
    content["model_args"]["dropout"] = 0.1
    (root / "config.yaml").write_text(yaml.safe_dump(content))
    train(load_training_config(["-c", str(root / "config.yaml")]))
    return root / "config.yaml", root / "model"


class SignalAt(TrainerCallback):
    """Sends `signum` to this process while step `step` runs (before its forward pass)."""

    def __init__(self, signum: int, step: int):
        self.signum, self.step = signum, step

    def on_step_begin(self, args, state, control, **kwargs):
        if state.global_step + 1 == self.step:
            os.kill(os.getpid(), self.signum)


def run(argv: list[str], callback=None, during_validation_at: tuple[int, int] | None = None):
    """`train()` with a test callback, or a signal sent from inside the validation of a given step."""
    trainer, stop, resume = prepare_trainer(load_training_config(argv))
    if callback is not None:
        trainer.add_callback(callback)
    if during_validation_at is not None:
        step, signum = during_validation_at
        validate = trainer._validate_one

        def validate_and_signal(*args, **kwargs):
            if trainer.state.global_step == step:
                os.kill(os.getpid(), signum)
            return validate(*args, **kwargs)

        trainer._validate_one = validate_and_signal
    trainer.train(resume_from_checkpoint=str(resume) if resume is not None else None)
    trainer.save_final_checkpoint()
    return trainer, stop


@pytest.mark.parametrize("signum, step", [(signal.SIGINT, 10), (signal.SIGTERM, 13)])
def test_signal_between_checkpoints_then_rerun_is_exact(straight, tmp_path, signum, step):
    config, straight_dir = straight
    argv = ["-c", str(config), "--model-dir", str(tmp_path / "model")]
    trainer, stop = run(argv, SignalAt(signum, step))
    assert stop.stop_reason == "signal" and trainer.state.global_step == step
    assert checkpoints.latest_checkpoint(tmp_path / "model").name == f"checkpoint-{step}"
    trainer, _ = run(argv)
    assert trainer.state.global_step == MAX_STEPS
    assert_same_run(straight_dir, tmp_path / "model")


def test_signal_during_validation_then_rerun_is_exact(straight, tmp_path):
    config, straight_dir = straight
    argv = ["-c", str(config), "--model-dir", str(tmp_path / "model")]
    trainer, stop = run(argv, during_validation_at=(8, signal.SIGINT))
    assert stop.stop_reason == "signal" and trainer.state.global_step == 9  # validation finished, one more step
    run(argv)
    assert_same_run(straight_dir, tmp_path / "model")


def test_kill_9_then_rerun_resumes_exactly_from_the_last_checkpoint(straight, tmp_path):
    config, straight_dir = straight
    model_dir = tmp_path / "model"
    argv = ["-c", str(config), "--model-dir", str(model_dir)]
    # the same thread count as this process's runs: reductions split over threads round differently
    env = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())}
    process = subprocess.Popen([sys.executable, str(REPO / "recipes" / "train_mt.py"), *argv],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        deadline = time.monotonic() + 180
        log = model_dir / "train.log"
        while not (log.exists() and "train | step 16 |" in log.read_text()):
            assert process.poll() is None and time.monotonic() < deadline, "training did not reach step 16"
            time.sleep(0.02)
        process.kill()
        process.wait()
    finally:
        if process.poll() is None:
            process.kill()
    latest = checkpoints.latest_checkpoint(model_dir)
    assert latest is not None and checkpoints.checkpoint_step(latest) < MAX_STEPS
    trainer, _ = run(argv)
    assert trainer.state.global_step == MAX_STEPS
    assert f"resuming from {latest}" in (model_dir / "train.log").read_text()
    assert_same_run(straight_dir, model_dir)


def _pasero_train_launcher(accelerate_config: str, config: Path, model_dir: Path) -> list[str]:
    return [sys.executable, "-m", "pasero_hf.cli.train", "--accelerate-config",
            str(REPO / "accelerate_configs" / accelerate_config), "--main-process-port", "0",
            "-c", str(config), "--model-dir", str(model_dir)]


def _stop_when_logged(command: list[str], log: Path, line: str, signum: int, whole_group: bool):
    """Starts `command` in its own process group, sends `signum` once `line` is in `log` (to the whole group, as a
    terminal's Ctrl-C does, or to the launcher alone, as `kill PID` does) and waits for the command to end."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                               cwd=REPO, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while not (log.exists() and line in log.read_text()):
            assert process.poll() is None and time.monotonic() < deadline, process.communicate()[1][-3000:]
            time.sleep(0.05)
        if whole_group:
            os.killpg(process.pid, signum)
        else:
            process.send_signal(signum)
        _, stderr = process.communicate(timeout=300)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    return process.returncode, stderr


@pytest.mark.distributed
def test_two_process_ddp_stopped_by_a_signal_then_rerun_is_exact(write_config, tmp_path):
    """`pasero-train --accelerate-config cpu_ddp.yaml` stopped by Ctrl-C (SIGINT to the whole process group, as a
    terminal sends it): both workers stop after the same step with one complete checkpoint holding each rank's RNG
    and logging state, one message is printed, and the command exits 0 only once the checkpoint is written (plain
    `accelerate launch` dies with exit status 1 while the workers save). The rerun ends like an uninterrupted
    2-process run, bit for bit."""
    from tests.training.test_distributed import launch

    config = write_config(max_steps=MAX_STEPS, save_interval=6, valid_interval=8, log_interval=4, keep_last=2,
                          model_args={"embed_dim": 32, "encoder_layers": 1, "decoder_layers": 1,
                                      "encoder_attention_heads": 2, "decoder_attention_heads": 2,
                                      "encoder_ffn_dim": 64, "decoder_ffn_dim": 64, "dropout": 0.1})
    straight = launch(_pasero_train_launcher("cpu_ddp.yaml", config, tmp_path / "straight"))
    assert "values were not passed" not in straight.stderr

    model_dir = tmp_path / "resumed"
    command = _pasero_train_launcher("cpu_ddp.yaml", config, model_dir)
    returncode, stderr = _stop_when_logged(command, model_dir / "train.log", "train | step 8 |", signal.SIGINT,
                                           whole_group=True)
    assert returncode == 0, stderr[-3000:]
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr[-3000:]
    latest = checkpoints.latest_checkpoint(model_dir)
    step = checkpoints.checkpoint_step(latest)
    assert 8 <= step < MAX_STEPS, stderr[-3000:]
    assert json.loads((latest / "trainer_state.json").read_text())["global_step"] == step
    for rank in (0, 1):
        assert (latest / f"rng_state_{rank}.pth").is_file() and checkpoints.read_log_state(latest, rank) is not None
    assert stderr.count("received SIGINT") == 1  # one message, from rank 0
    launch(command)
    assert_same_run(tmp_path / "straight", model_dir)


def test_one_process_launcher_stopped_by_sigterm_exits_0_after_saving(write_config, tmp_path):
    """`pasero-train --accelerate-config cpu.yaml` and `kill PID` (SIGTERM to the launcher alone, as a scheduler
    sends it): the signal reaches the training process, which saves; the command then exits 0."""
    config = write_config(max_steps=MAX_STEPS, save_interval=50, valid_interval=50, log_interval=2)
    model_dir = tmp_path / "run"
    returncode, stderr = _stop_when_logged(_pasero_train_launcher("cpu.yaml", config, model_dir),
                                           model_dir / "train.log", "train | step 2 |", signal.SIGTERM,
                                           whole_group=False)
    assert returncode == 0, stderr[-3000:]
    assert stderr.count("received SIGTERM") == 1 and "Traceback" not in stderr, stderr[-3000:]
    assert "values were not passed" not in stderr
    latest = checkpoints.latest_checkpoint(model_dir)
    assert latest is not None and 2 <= checkpoints.checkpoint_step(latest) < MAX_STEPS
