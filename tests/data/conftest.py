"""Fixtures of the data pipeline tests: real Pasero tokenizers (PaseroTokenizer over the bundled bpecodes and
dictionaries) and config builders over the bundled iso-codes corpora (en-XX, 782 to 10802 lines)."""

from collections.abc import Iterable
from pathlib import Path

import pytest

from pasero_hf.data import DataConfig
from pasero_hf.data.sample_data import iso_codes_dir
from pasero_hf.tokenization import PaseroTokenizer

ISO_LANGS = ["ar", "de", "fr", "it", "ja", "ko", "ru", "zh"]


def pasero_tokenizer(fixtures_dir: Path, model: str) -> PaseroTokenizer:
    """The real tokenizer of a Pasero model (its bpecodes and dict.txt from tests/fixtures/pasero-models)."""
    directory = fixtures_dir / "pasero-models" / model
    return PaseroTokenizer(bpe_file=str(directory / "bpecodes"), dict_file=str(directory / "dict.txt"))


def write_lines(path: Path, lines: Iterable[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def iso_dir() -> Path:
    return iso_codes_dir()


@pytest.fixture(scope="session")
def iso_tokenizer(fixtures_dir) -> PaseroTokenizer:
    """TED-top20's tokenizer: it has language codes for every iso-codes language but zh (zh_cn)."""
    return pasero_tokenizer(fixtures_dir, "TED-top20")


@pytest.fixture(scope="session")
def bible_tokenizer(fixtures_dir) -> PaseroTokenizer:
    return pasero_tokenizer(fixtures_dir, "bible-en-es-8k")


@pytest.fixture(scope="session")
def iso_cache(tmp_path_factory):
    """One tokenization cache for the session: tests that tokenize the same corpora the same way reuse it."""
    return tmp_path_factory.mktemp("iso-cache")


@pytest.fixture
def iso_config(iso_dir, iso_cache):
    """DataConfig over the iso-codes corpora (en -> `targets`)."""
    cache = iso_cache

    def make(targets=ISO_LANGS, **options) -> DataConfig:
        data = {
            "data_dir": str(iso_dir), "source_langs": ["en"], "target_langs": list(targets),
            "train_corpora": [{"paths": ["{pair}/train"]}], "batch_size": 256, "max_len": 64,
            "buffer_size": 2000, "cache_dir": str(cache),
        }
        data.update(options)
        return DataConfig.from_dict(data)

    return make


@pytest.fixture(scope="session")
def lines_writer():
    return write_lines
