"""SIGINT/SIGTERM stop training after the current step with a complete checkpoint and exit status 0."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pasero_hf.training import checkpoints

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_saves_and_exits_cleanly(write_config, tmp_path, signum):
    config = write_config(max_steps=100000, valid_interval=100000, log_interval=1)
    model_dir = tmp_path / "model"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen([sys.executable, str(REPO / "recipes" / "train_mt.py"), "-c", str(config)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 120
        log = model_dir / "train.log"
        while not (log.exists() and "train | step 2 |" in log.read_text()):
            assert process.poll() is None, process.communicate()[1][-3000:]
            assert time.monotonic() < deadline, "training did not start"
            time.sleep(0.2)
        process.send_signal(signum)
        stdout, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, stderr[-3000:]
    latest = checkpoints.latest_checkpoint(model_dir)
    assert latest is not None
    state = json.loads((latest / "trainer_state.json").read_text())
    assert state["global_step"] == checkpoints.checkpoint_step(latest) >= 2
    assert f"steps: {state['global_step']}" in stdout
    assert f"received {signal.Signals(signum).name}" in stderr
