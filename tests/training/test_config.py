"""TrainingConfig: YAML + command line, error messages, placeholders, training.yaml round trip."""

import pytest
import yaml

from pasero_hf.training.config import ConfigError, config_fields, load_training_config


def write(tmp_path, text: str, name: str = "config.yaml"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_command_line_overrides_yaml_and_types_values(tmp_path):
    path = write(tmp_path, "lr: 0.001\nwarmup: 200\nsource_lang: en\ntarget_lang: es\nmodel_dir: out/{pair}\n"
                           "lang_temperature: 2\n")
    config = load_training_config(["-c", str(path), "--lr", "1e-4", "-t", "fr", "de", "--no-shuffle",
                                   "--model-args", "{embed_dim: 256}", "--max-time", "15"])
    assert config.optimization.lr == 1e-4
    assert config.optimization.warmup == 200
    assert config.optimization.max_time == 15.0
    assert config.data.lang_temperature == 2.0 and isinstance(config.data.lang_temperature, float)
    assert config.data.source_langs == ["en"]
    assert config.data.target_langs == ["fr", "de"]
    assert config.data.shuffle is False
    assert config.model.model_args == {"embed_dim": 256}
    assert config.lang_pairs == [("en", "fr"), ("en", "de")]


def test_later_config_file_wins(tmp_path):
    first = write(tmp_path, "lr: 0.1\nwarmup: 10\n", "a.yaml")
    second = write(tmp_path, "lr: 0.2\n", "b.yaml")
    config = load_training_config(["-c", str(first), "-c", str(second)])
    assert (config.optimization.lr, config.optimization.warmup) == (0.2, 10)


def test_lang_pairs_option(tmp_path):
    config = load_training_config(["--lang-pairs", "de-en", "fr-en"])
    assert config.lang_pairs == [("de", "en"), ("fr", "en")]


def test_unknown_yaml_key_names_file_line_and_suggestion(tmp_path):
    path = write(tmp_path, "lr: 0.1\n\nlang_temprature: 5\n")
    with pytest.raises(ConfigError) as error:
        load_training_config(["-c", str(path)])
    message = str(error.value)
    assert f"{path}:3" in message and "'lang_temperature'" in message


def test_unknown_command_line_option_suggests(tmp_path):
    with pytest.raises(ConfigError, match=r"'--valid-intreval'.*'--valid-interval'"):
        load_training_config(["--valid-intreval", "100"])


@pytest.mark.parametrize("argv, pattern", [
    (["--lr", "fast"], r"lr.*'fast'.*--lr"),
    (["--warmup", "1.5"], r"warmup.*'1.5'"),
    (["--max-steps", "0"], r"max_steps: must be >= 1"),
])
def test_wrong_type_names_option_and_value(argv, pattern):
    with pytest.raises(ConfigError, match=pattern):
        load_training_config(argv)


def test_wrong_type_in_yaml_names_option_value_and_line(tmp_path):
    path = write(tmp_path, "batch_size: 4096\nshuffle: sometimes\n")
    with pytest.raises(ConfigError) as error:
        load_training_config(["-c", str(path)])
    message = str(error.value)
    assert "shuffle" in message and "sometimes" in message and f"{path}:2" in message


def test_malformed_yaml_names_file_and_line(tmp_path):
    path = write(tmp_path, "lr: 0.1\nwarmup: [1, 2\nmax_steps: 3\n")
    with pytest.raises(ConfigError, match=rf"{path}:\d+: malformed YAML"):
        load_training_config(["-c", str(path)])


def test_placeholder_needs_a_single_pair(tmp_path):
    config = load_training_config(["--model-dir", str(tmp_path / "{src}2{tgt}"), "-s", "en", "-t", "es"])
    assert config.model_dir == tmp_path / "en2es"
    config = load_training_config(["--model-dir", str(tmp_path / "{pair}"), "--lang-pairs", "de-en", "fr-en"])
    with pytest.raises(ConfigError, match=r"model_dir: .*exactly one language pair.*de-en, fr-en"):
        _ = config.model_dir


def test_training_yaml_round_trip(tmp_path):
    config = load_training_config(["-s", "en", "-t", "es", "--lr", "3e-4", "--model-dir", str(tmp_path),
                                   "--train-corpora", "train"], )
    path = tmp_path / "training.yaml"
    config.write_training_yaml(path)
    written = yaml.safe_load(path.read_text())
    from pasero_hf.training.config import MODEL_HYPERPARAMETERS

    assert set(written) == set(config_fields()) - set(MODEL_HYPERPARAMETERS)  # unset hyper-parameters left out
    reloaded = load_training_config(["-c", str(path)])
    assert reloaded.to_dict() == config.to_dict()
    assert reloaded.data.train_corpora[0].paths == ["train"]


def test_option_names_are_pasero_names():
    names = set(config_fields())
    for name in ("data_dir", "model_dir", "tokenizer", "tokenizer_path", "dict", "arch",
                 "train_corpora", "valid_corpora", "lang_temperature", "lang_code", "batch_size", "batch_by",
                 "virtual_dp_size", "max_source_len", "max_target_len", "max_len", "min_len_ratio", "max_len_ratio",
                 "label_smoothing", "dtype", "checkpoint_activations", "lr", "warmup", "max_steps", "save_interval",
                 "valid_interval", "patience", "early_stopping_metric", "bleu_tok", "ckpt", "continue_", "reset",
                 "reset_optimizer", "lora_rank", "encoder_adapters_by", "decoder_adapters_by", "max_time"):
        assert name in names, name


def test_corpus_paths_with_placeholders_on_the_command_line():
    """`--train-corpora '{pair}/train'` is a path, not a malformed YAML mapping."""
    config = load_training_config(["--train-corpora", "{pair}/train", '{paths: ["{pair}/ted"], domain: ted}',
                                   "--lang-pairs", "de-en"])
    assert [(c.paths, c.domain) for c in config.data.train_corpora] == [(["{pair}/train"], None),
                                                                        (["{pair}/ted"], "ted")]
