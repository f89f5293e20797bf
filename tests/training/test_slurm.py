"""Pasero's cluster workflow on a real single-node Slurm (Debian's slurmctld/slurmd + munge, started and stopped here
by scripts/slurm/*.sh): recipes/slurm/train.sh under sbatch; `scancel -b -s INT` saves and exits,
`scancel -b -s USR1` saves and restarts in place from MODEL_DIR/training.yaml, a requeued job resumes from its last
checkpoint; recipes/slurm/decode.sh decodes with the trained run's directory."""

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pasero_hf.training import checkpoints

REPO = Path(__file__).parents[2]


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    """SLURM_CONF of a running single-node cluster (stopped at the end of the module)."""
    base = tmp_path_factory.mktemp("slurm")
    munge_was_running = subprocess.run(["pgrep", "-x", "munged"], capture_output=True).returncode == 0
    started = subprocess.run(["bash", str(REPO / "scripts" / "slurm" / "start-slurm.sh"), str(base)],
                             capture_output=True, text=True, timeout=120)
    assert started.returncode == 0, started.stdout + started.stderr
    env = {**os.environ, "SLURM_CONF": str(base / "slurm.conf"), "PYTHON": sys.executable, "OMP_NUM_THREADS": "1"}
    yield env
    stop = [] if munge_was_running else ["--munge"]
    subprocess.run(["bash", str(REPO / "scripts" / "slurm" / "stop-slurm.sh"), str(base), *stop],
                   capture_output=True, timeout=60)


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def job_info(env, job: str) -> dict[str, str]:
    out = subprocess.run(["scontrol", "show", "job", job, "-o"], capture_output=True, text=True, env=env).stdout
    return dict(re.findall(r"(\w+)=(\S*)", out))


def sbatch(env, workdir: Path, *args: str) -> str:
    result = subprocess.run(["sbatch", "--parsable", "--chdir", str(workdir), "--output", str(workdir / "slurm-%j.out"),
                             *args], capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().split(";")[0]


def train_log(model_dir: Path) -> str:
    path = model_dir / "train.log"
    return path.read_text(encoding="utf-8") if path.exists() else ""


def wait_training(model_dir: Path, count: int = 1):
    """Until the `count`-th run of the job logs training steps."""
    def steps_logged():
        runs = train_log(model_dir).split("command: ")[1:]
        return len(runs) >= count and "train | step" in runs[count - 1]

    wait_for(steps_logged, 240, f"training run {count} to log steps")


def finished(env, job: str, state: str = "COMPLETED"):
    info = wait_for(lambda: (i := job_info(env, job)).get("JobState") in ("COMPLETED", "FAILED", "CANCELLED")
                    and i, 240, f"job {job} to finish")
    assert info["JobState"] == state and info["ExitCode"] == "0:0", info


@pytest.mark.slow
def test_slurm_interrupt_restart_requeue_and_decode(slurm, write_config, tmp_path):
    """One `sbatch --requeue` job goes through all three (each training launch costs seconds of imports): USR1
    restarts in place, a requeue reruns the job from its last checkpoint, INT saves and ends the job."""
    env = slurm
    model_dir = tmp_path / "model"
    config = write_config(max_steps=100000, valid_interval=100000, log_interval=1, max_time=5)
    train_sh = str(REPO / "recipes" / "slurm" / "train.sh")

    # USR1: save, restart in place from MODEL_DIR/training.yaml
    job = sbatch(env, tmp_path, "--requeue", train_sh, "-c", str(config))
    output = tmp_path / f"slurm-{job}.out"
    wait_training(model_dir)
    subprocess.run(["scancel", "-b", "-s", "USR1", job], env=env, check=True)
    wait_for(lambda: "resuming from" in train_log(model_dir), 240, "the restarted run to resume")
    wait_training(model_dir, count=2)
    restarted = train_log(model_dir).split("command: ")[-1]
    assert f"-c {model_dir / 'training.yaml'} --no-reset" in restarted.splitlines()[0]
    first = checkpoints.complete_checkpoints(model_dir)
    assert first, "USR1 saved no checkpoint"
    assert "SIGUSR1: saving, then restarting" in output.read_text(encoding="utf-8")

    # requeue (what preemption does): Slurm kills and reruns the job; the rerun resumes from the last checkpoint
    last_step = max(checkpoints.checkpoint_step(p) for p in checkpoints.complete_checkpoints(model_dir))
    resumes = train_log(model_dir).count("resuming from")
    subprocess.run(["scontrol", "requeue", job], env=env, check=True)
    wait_for(lambda: job_info(env, job).get("Restarts") == "1" and "requeued (restart 1)" in
             output.read_text(encoding="utf-8"), 240, "the requeued job to start again")
    wait_for(lambda: train_log(model_dir).count("resuming from") > resumes, 240, "the requeued job to resume")
    wait_training(model_dir, count=train_log(model_dir).count("command: "))
    resumed = re.findall(r"resuming from \S*checkpoint-(\d+)", train_log(model_dir))
    assert int(resumed[-1]) >= last_step
    assert int(resumed[-1]) > checkpoints.checkpoint_step(first[-1])  # the restarted run saved when stopped too

    # INT: save and exit, the job completes
    subprocess.run(["scancel", "-b", "-s", "INT", job], env=env, check=True)
    finished(env, job)
    assert "SIGINT: saving and exiting" in output.read_text(encoding="utf-8")
    steps = [checkpoints.checkpoint_step(p) for p in checkpoints.complete_checkpoints(model_dir)]
    assert max(steps) > int(resumed[-1])  # the last run saved too
    assert (model_dir / "model_last" / "config.json").is_file()

    # decode.sh with the run's directory (model_last: no validation ran)
    source = tmp_path / "test.en"
    source.write_text("In the beginning\n", encoding="utf-8")
    job = sbatch(env, tmp_path, str(REPO / "recipes" / "slurm" / "decode.sh"), str(model_dir), "-i", str(source),
                 "-t", "es", "-o", str(tmp_path / "test.out.es"), "--beam-size", "1", "--max-output-len", "5")
    finished(env, job)
    assert (tmp_path / "test.out.es").read_text(encoding="utf-8").count("\n") == 1
