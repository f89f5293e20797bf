"""A run prints what the user needs: no bars for internal steps (datasets map/filter, model shards written or
loaded at each checkpoint), rounded metrics, no empty `example output:` lines."""

import re

from pasero_hf.training.config import load_training_config
from pasero_hf.training.run import train


def test_training_output_is_quiet_and_rounded(write_config, tmp_path, capfd):
    config = write_config(max_steps=2, valid_interval=2, log_interval=1, save_interval=1)
    argv = ["-c", str(config)]
    train(load_training_config(argv + ["--max-steps", "1"]))
    train(load_training_config(argv))  # resumes: loads checkpoint-1
    err = capfd.readouterr().err
    assert "resuming from" in err
    for noise in ("Writing model shards", "Loading weights", "Map", "Filter", "Generating train split",
                  "Flattening the indices", "tokenizing"):
        assert noise not in err, noise
    assert re.search(r"new best chrf: \d+\.\d\d @\d+\n", err), err[-2000:]
    assert re.search(r"eval_chrf \d+\.\d\d \|", err)
    assert not re.search(r"example output: *\n", err)
    assert "%|" in err  # the training progress bar is still there
