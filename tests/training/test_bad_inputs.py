"""Bad input is a clear error before training starts (recipes/train_mt.py exits with status 2 and a message)."""

import contextlib
import importlib.util
import os
import subprocess
from pathlib import Path

import pytest

from pasero_hf.training import checkpoints

RECIPE = os.path.join(os.path.dirname(__file__), "..", "..", "recipes", "train_mt.py")


def run_recipe(argv, capsys):
    spec = importlib.util.spec_from_file_location("train_mt", RECIPE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    status = module.main(argv)
    return status, capsys.readouterr().err


def assert_fails_before_training(status, err, model_dir, *fragments):
    assert status == 2, err
    err = err[err.index("error: "):]  # after the log lines
    for fragment in fragments:
        assert fragment in err, (fragment, err)
    assert checkpoints.latest_checkpoint(model_dir) is None


def test_missing_file_names_expanded_path_and_placeholder(write_config, tmp_path, capsys):
    config = write_config(train_corpora=[{"paths": ["bible.{pair}"]}])
    status, err = run_recipe(["-c", str(config)], capsys)
    assert_fails_before_training(status, err, tmp_path / "model", "bible.en-es.en", "'bible.{pair}'", "pair='en-es'")


def test_line_count_mismatch(write_config, tiny_data_dir, tmp_path, capsys):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "odd.en").write_text("one\ntwo\nthree\n")
    (tmp_path / "data" / "odd.es").write_text("uno\ndos\n")
    config = write_config(train_corpora=[{"paths": [str(tmp_path / "data" / "odd")]}])
    status, err = run_recipe(["-c", str(config)], capsys)
    assert_fails_before_training(status, err, tmp_path / "model", "odd.es", "3", "2")


def test_empty_corpus(write_config, tmp_path, capsys):
    (tmp_path / "data").mkdir()
    for lang in ("en", "es"):
        (tmp_path / "data" / f"empty.{lang}").write_text("")
    config = write_config(train_corpora=[{"paths": [str(tmp_path / "data" / "empty")]}])
    status, err = run_recipe(["-c", str(config)], capsys)
    assert_fails_before_training(status, err, tmp_path / "model", "empty")


def test_malformed_yaml(tmp_path, capsys):
    config = tmp_path / "broken.yaml"
    config.write_text("lr: 0.001\nmodel_dir: {oops\n")
    status, err = run_recipe(["-c", str(config)], capsys)
    assert_fails_before_training(status, err, tmp_path / "model", f"{config}:", "malformed YAML")


def test_unknown_language_pair(write_config, tmp_path, capsys):
    config = write_config(train_corpora=[{"paths": ["train"], "lang_pairs": ["en-es"]}])
    status, err = run_recipe(["-c", str(config), "--lang-pairs", "en-es", "en-fr"], capsys)
    assert_fails_before_training(status, err, tmp_path / "model", "en-fr")


@contextlib.contextmanager
def read_only_directory(path: Path):
    """A directory nobody can create files in, root included: mode 0500 for a user; for root (CI runs as root) the
    immutable attribute (`chattr +i`, e2fsprogs), which root's permissions do not bypass."""
    path.mkdir(mode=0o500)
    as_root = os.geteuid() == 0
    if as_root:
        subprocess.run(["chattr", "+i", str(path)], check=True)
    try:
        yield path
    finally:
        if as_root:
            subprocess.run(["chattr", "-i", str(path)], check=True)
        path.chmod(0o700)


def test_read_only_model_dir(write_config, tmp_path, capsys):
    with read_only_directory(tmp_path / "locked") as locked:
        status, err = run_recipe(["-c", str(write_config()), "--model-dir", str(locked / "model")], capsys)
        assert_fails_before_training(status, err, locked / "model", "model_dir", str(locked / "model"))


def test_unwritable_model_dir(write_config, tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    status, err = run_recipe(["-c", str(write_config()), "--model-dir", str(blocker / "model")], capsys)
    assert_fails_before_training(status, err, tmp_path / "nowhere", "model_dir: cannot write to", str(blocker))


@pytest.mark.parametrize("where", ["yaml", "command line"])
def test_misspelled_model_option_is_refused_with_the_closest_names(write_config, tmp_path, capsys, where):
    """A typo inside model_args used to be stored silently (and the model trained with the default embed_dim)."""
    if where == "yaml":
        config = write_config(model_args={"embed_dimm": 32})
        argv = ["-c", str(config)]
    else:
        argv = ["-c", str(write_config()), "--model-args", "{embed_dimm: 32}"]
    status, err = run_recipe(argv, capsys)
    assert_fails_before_training(status, err, tmp_path / "model", "model_args: unknown model option 'embed_dimm'",
                                 "did you mean 'embed_dim'")


def test_from_arch_refuses_unknown_options():
    from pasero_hf.models.pasero import PaseroConfig

    with pytest.raises(ValueError, match=r"unknown model option 'encoder_layer' \(did you mean 'encoder_layers'"):
        PaseroConfig.from_arch("transformer_small", encoder_layer=2)
    config = PaseroConfig.from_arch("transformer_small", encoder_layers=2, d_model=128)  # attribute_map aliases work
    assert (config.encoder_layers, config.embed_dim) == (2, 128)
