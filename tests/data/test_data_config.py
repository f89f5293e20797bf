import pytest

from pasero_hf.data import ConfigError, CorpusSpec, DataConfig


def test_from_dict_builds_nested_specs_and_normalises():
    config = DataConfig.from_dict({
        "data_dir": "d", "lang_pairs": ["de-en"], "batch_by": "target_lang", "lang_temperature": 5,
        "train_corpora": [{"paths": "{pair}/train", "multiplier": 2, "domain": "news"}],
    })
    assert config.train_corpora == [CorpusSpec(paths=["{pair}/train"], multiplier=2.0, domain="news")]
    assert config.batch_by == ["target_lang"]
    assert isinstance(config.lang_temperature, float) and config.lang_temperature == 5.0
    assert config.source_len_limit == config.target_len_limit == 256


def test_unknown_keys_suggest_the_closest_names():
    with pytest.raises(ConfigError, match=r"unknown option 'lang_temprature' \(did you mean lang_temperature"):
        DataConfig.from_dict({"lang_temprature": 2})
    with pytest.raises(ConfigError, match=r"'train_corpora\[1\]\.multiplyer' \(did you mean multiplier"):
        DataConfig.from_dict({"train_corpora": [{"paths": ["a"]}, {"paths": ["b"], "multiplyer": 2}]})


@pytest.mark.parametrize("data, message", [
    ({"batch_size": "big"}, r"batch_size: expected int, got str 'big'"),
    ({"shuffle": "yes"}, r"shuffle: expected bool, got str 'yes'"),
    ({"batch_size": True}, r"batch_size: expected int, got the boolean True"),
    ({"source_langs": "en"}, r"source_langs: expected a list"),
    ({"train_corpora": [{"paths": ["x"], "format": "csv"}]}, r"train_corpora\[0\]\.format: 'csv' is not one of"),
    ({"train_corpora": [{"multiplier": 2}]}, r"train_corpora\[0\].*paths"),
])
def test_wrong_types_name_the_key_and_value(data, message):
    with pytest.raises(ConfigError, match=message):
        DataConfig.from_dict(data)


@pytest.mark.parametrize("data, message", [
    ({"batch_by": ["language"]}, r"batch_by: 'language' is not one of"),
    ({"lang_pairs": ["deen"]}, r"lang_pairs: 'deen' is not a language pair"),
    ({"batch_size": 100, "max_len": 128}, r"batch_size: 100 tokens cannot hold one pair of the maximum length \(128\)"),
    ({"lang_temperature": 0}, r"lang_temperature: must be positive"),
    ({"train_corpora": [{"paths": ["x"], "probability": 1.5}]}, r"train_corpora\[0\].*probability: must be in"),
])
def test_invalid_values_are_rejected(data, message):
    with pytest.raises(ConfigError, match=message):
        DataConfig.from_dict(data)


def test_every_data_option_has_help_text_shown_by_help():
    import dataclasses

    from pasero_hf.training.config import argument_parser

    missing = [field.name for field in dataclasses.fields(DataConfig) if not field.metadata.get("help")]
    assert missing == []
    text = " ".join(argument_parser(prog="train_mt.py").format_help().split())
    assert "--lang-temperature LANG_TEMPERATURE sampling probability of a language pair" in text
    assert "--train-corpora TRAIN_CORPORA [TRAIN_CORPORA ...] training corpus definitions" in text
