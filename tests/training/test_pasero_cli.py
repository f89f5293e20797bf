"""`pasero-train` as Pasero users type it: the same recipe as recipes/train_mt.py, `--dry-run`, and bad input that
stops the run once, with the file and line, exit status 2 and nothing written."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pasero_hf.cli.train import main

REPO = Path(__file__).parents[2]


def run(argv, capsys):
    status = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def assert_one_error(status, err, *fragments):
    assert status == 2, err
    assert err.count("error:") == 1, err
    for fragment in fragments:
        assert fragment in err, (fragment, err)


def test_invalid_utf8_config(tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_bytes(b"lr: 0.001\n# caf\xe9 au lait\nwarmup: 10\n")
    status, _, err = run(["-c", config], capsys)
    assert_one_error(status, err, f"{config}:2: invalid UTF-8")


def test_duplicate_keys(tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text("lr: 0.001\nwarmup: 10\nlr: 0.002\n", encoding="utf-8")
    status, _, err = run(["-c", config], capsys)
    assert_one_error(status, err, f"{config}:3: duplicate option 'lr' (first set on line 1)")
    config.write_text("train_corpora:\n  - paths: [a]\n    domain: x\n    domain: y\n", encoding="utf-8")
    status, _, err = run(["-c", config], capsys)
    assert_one_error(status, err, f"{config}:4: duplicate key 'domain' (first set on line 3)")


def test_list_where_a_mapping_is_expected(tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text("- lr: 0.001\n- warmup: 10\n", encoding="utf-8")
    status, _, err = run(["-c", config], capsys)
    assert_one_error(status, err, f"{config}:1: expected a mapping of option names to values")
    config.write_text("lr: 0.001\nmodel_args: [embed_dim, 256]\n", encoding="utf-8")
    status, _, err = run(["-c", config], capsys)
    assert_one_error(status, err, "model_args: expected dict, got list", f"{config}:2")


def test_nothing_is_written_before_the_data_checks_pass(write_config, tmp_path, capsys):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "odd.en").write_text("one\ntwo\nthree\n")
    (tmp_path / "data" / "odd.es").write_text("uno\ndos\n")
    config = write_config(valid_corpora=[{"paths": [str(tmp_path / "data" / "odd")]}])
    status, _, err = run(["-c", config], capsys)
    assert_one_error(status, err, "different line counts", "odd.es has 2 lines")
    assert not (tmp_path / "model").exists()
    (tmp_path / "data" / "odd.es").write_bytes(b"uno\nd\xf3s\ntres\n")
    status, _, err = run(["-c", config], capsys)
    assert_one_error(status, err, "odd.es:2: invalid UTF-8")
    assert not (tmp_path / "model").exists()
    config = write_config()  # a model that cannot be built: also before anything is written
    status, _, err = run(["-c", config, "--embed-dim", "30", "--encoder-attention-heads", "4"], capsys)
    assert_one_error(status, err, "arch/model_args:")
    assert not (tmp_path / "model").exists()


def test_dry_run_writes_nothing_and_prints_configuration_and_corpora(write_config, tmp_path, capsys):
    config = write_config()
    status, out, err = run(["-c", config, "--dry-run", "--lang-temperature", "2"], capsys)
    assert status == 0, err
    assert "lang_temperature: 2.0" in out and f"model_dir: {tmp_path / 'model'}" in out
    table = out[out.index("# corpora:"):].splitlines()
    assert table[1].split() == ["split", "corpus", "pair", "lines", "pairs", "prob", "files"]
    train = [line.split() for line in table if line.startswith("train ")]
    assert len(train) == 1 and train[0][:6] == ["train", "train.en-es", "en-es", "300", "300", "1.0000"]
    valid = [line.split() for line in table if line.startswith("valid ")]
    assert len(valid) == 1 and valid[0][3:6] == ["12", "12", "-"]
    assert not (tmp_path / "model").exists()


@pytest.mark.slow
def test_pasero_train_command_and_recipe_run_the_same_code(write_config, tmp_path):
    config = write_config()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = Path(sys.executable).parent / "pasero-train"
    a = subprocess.run([str(command), "-c", str(config), "--dry-run"], capture_output=True, text=True, env=env,
                       timeout=300)
    b = subprocess.run([sys.executable, str(REPO / "recipes" / "train_mt.py"), "-c", str(config), "--dry-run"],
                       capture_output=True, text=True, env=env, timeout=300)
    assert a.returncode == b.returncode == 0, a.stderr + b.stderr
    assert a.stdout == b.stdout and "nothing was written" in a.stdout


@pytest.mark.slow
def test_a_bad_config_is_reported_once_under_torchrun(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("lr: 0.001\nlr: 0.002\n", encoding="utf-8")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", "0",
         "-m", "pasero_hf.cli.train", "-c", str(config)], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode != 0
    assert result.stderr.count("duplicate option 'lr'") == 1, result.stderr
