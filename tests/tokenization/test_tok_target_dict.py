"""PaseroTokenizer with Pasero's `target_dict` and `target_tokenizer_path`: targets are encoded, and outputs decoded,
with the target dictionary and BPE model; sources with the source ones (MarianTokenizer's `separate_vocabs` mechanism:
`text_target=` switches to the target side)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from transformers import AutoTokenizer

import pasero_hf.models  # noqa: F401  (registers PaseroTokenizer with AutoTokenizer)
from pasero_hf.tokenization import PaseroBPE
from pasero_hf.tokenization.dictionary import Dictionary
from pasero_hf.tokenization.tokenization_pasero import PaseroTokenizer

SOURCE = "And God said, Let there be LIGHT: and there was light."
TARGET = "Y dijo Dios: Sea la LUZ: y fué la luz."


@pytest.fixture(scope="module")
def vocab_dir(bible_dir, tmp_path_factory) -> Path:
    """Pasero's per-language layout: one bpecodes with dict.en.txt and dict.es.txt (with language codes), and a
    Spanish-only target BPE model with its own dictionary (pasero-build-tokenizer, the real command)."""
    directory = tmp_path_factory.mktemp("separate-vocabs")
    for lang in ("en", "es"):
        lines = (bible_dir / f"train.{lang}").read_text(encoding="utf-8").splitlines()[:400]
        (directory / f"train.{lang}").write_text("\n".join(lines) + "\n", encoding="utf-8")
    build = str(Path(sys.executable).parent / "pasero-build-tokenizer")
    for command in (
        [build, "-i", "train.en", "train.es", "-o", "bpecodes", "-d", "dict.txt", "-s", "400", "--lang-codes",
         "--vocab-path", "dict.{lang}.txt", "--dict-padding-factor", "1"],
        [build, "-i", "train.es", "-o", "bpecodes.es", "-d", "dict.bpe-es.txt", "-s", "150", "--lang-codes", "es",
         "--dict-padding-factor", "1"],
    ):
        subprocess.run(command, cwd=directory, check=True, capture_output=True, timeout=120)
    return directory


def separate(vocab_dir: Path, **kwargs) -> PaseroTokenizer:
    kwargs.setdefault("target_dict_file", str(vocab_dir / "dict.es.txt"))
    return PaseroTokenizer(bpe_file=str(vocab_dir / "bpecodes"), dict_file=str(vocab_dir / "dict.en.txt"), **kwargs)


def test_sources_and_targets_use_their_own_dictionary(vocab_dir):
    tokenizer = separate(vocab_dir)
    source_dict, target_dict = Dictionary.from_file(vocab_dir / "dict.en.txt"), Dictionary.from_file(
        vocab_dir / "dict.es.txt")
    assert tokenizer.separate_vocabs and len(source_dict) != len(target_dict)
    assert (tokenizer.vocab_size, tokenizer.target_vocab_size) == (len(source_dict), len(target_dict))
    batch = tokenizer([SOURCE], text_target=[TARGET])
    # each side's dictionary filters the BPE merges as pasero-decode does (dict as vocabulary)
    source_tokens = PaseroBPE.from_file(vocab_dir / "bpecodes", vocabulary=source_dict.tokens).tokenize(SOURCE)
    target_tokens = PaseroBPE.from_file(vocab_dir / "bpecodes", vocabulary=target_dict.tokens).tokenize(TARGET)
    assert batch["input_ids"][0] == [source_dict.index(t) for t in source_tokens] + [2]
    assert batch["labels"][0] == [target_dict.index(t) for t in target_tokens] + [2]
    assert 3 not in batch["labels"][0] and 3 not in batch["input_ids"][0]  # no <unk>: each side in its vocabulary
    assert batch["labels"][0] != tokenizer(TARGET)["input_ids"]  # the source dictionary gives other ids

    # ids -> text: target ids by default (labels, model outputs), source ids when told
    assert tokenizer.batch_decode(batch["labels"], skip_special_tokens=True) == [TARGET]
    assert tokenizer.decode(batch["input_ids"][0], skip_special_tokens=True, use_source_tokenizer=True) == SOURCE
    assert tokenizer.convert_ids_to_tokens(batch["labels"][0][:3]) == target_tokens[:3]
    assert tokenizer.convert_ids_to_tokens(batch["input_ids"][0][:3], use_source_tokenizer=True) == source_tokens[:3]
    assert tokenizer.get_tgt_vocab() == target_dict.indices
    # the mode does not leak: after text_target, plain calls encode sources again
    assert tokenizer(SOURCE)["input_ids"] == batch["input_ids"][0]


def test_language_codes_come_from_each_side(vocab_dir):
    """`<lang:es>` has a different id in each dictionary: lang_code (on the source) takes the source id,
    target_lang_code (labels, decoder prompt) the target id."""
    tokenizer = separate(vocab_dir, src_lang="en", tgt_lang="es", lang_code=True, target_lang_code=True)
    source_dict, target_dict = Dictionary.from_file(vocab_dir / "dict.en.txt"), Dictionary.from_file(
        vocab_dir / "dict.es.txt")
    source_id, target_id = source_dict.index("<lang:es>"), target_dict.index("<lang:es>")
    assert source_id != target_id and 3 not in (source_id, target_id)
    batch = tokenizer([SOURCE], text_target=[TARGET])
    assert batch["input_ids"][0][0] == source_id and batch["labels"][0][0] == target_id
    assert tokenizer.decoder_prefix_ids() == [2, target_id]
    assert tokenizer.lang_code_id("es", target=True) == target_id and tokenizer.lang_code_id("es") == source_id
    assert tokenizer.batch_decode(batch["labels"], skip_special_tokens=True) == [TARGET]


def test_target_bpe_model(vocab_dir):
    """target_bpe_file (Pasero's target_tokenizer_path): targets are split by their own merges."""
    tokenizer = PaseroTokenizer(bpe_file=str(vocab_dir / "bpecodes"), dict_file=str(vocab_dir / "dict.en.txt"),
                                target_bpe_file=str(vocab_dir / "bpecodes.es"),
                                target_dict_file=str(vocab_dir / "dict.bpe-es.txt"))
    target_dict = Dictionary.from_file(vocab_dir / "dict.bpe-es.txt")
    target_tokens = PaseroBPE.from_file(vocab_dir / "bpecodes.es", vocabulary=target_dict.tokens).tokenize(TARGET)
    assert target_tokens != PaseroBPE.from_file(vocab_dir / "bpecodes").tokenize(TARGET)
    labels = tokenizer(text_target=TARGET)["input_ids"]
    assert labels == [target_dict.index(t) for t in target_tokens] + [2]
    assert tokenizer.decode(labels, skip_special_tokens=True) == TARGET


def test_save_and_reload(vocab_dir, tmp_path):
    tokenizer = PaseroTokenizer(bpe_file=str(vocab_dir / "bpecodes"), dict_file=str(vocab_dir / "dict.en.txt"),
                                target_bpe_file=str(vocab_dir / "bpecodes.es"),
                                target_dict_file=str(vocab_dir / "dict.bpe-es.txt"), src_lang="en", tgt_lang="es",
                                target_lang_code=True)
    tokenizer.save_pretrained(tmp_path / "tok")
    saved = {path.name for path in (tmp_path / "tok").iterdir()}
    assert {"bpecodes", "dict.txt", "target_bpecodes", "target_dict.txt"} <= saved
    assert (tmp_path / "tok" / "target_dict.txt").read_bytes() == (vocab_dir / "dict.bpe-es.txt").read_bytes()
    config = json.loads((tmp_path / "tok" / "tokenizer_config.json").read_text())
    assert str(vocab_dir) not in json.dumps(config)  # the files travel, not their original paths
    reloaded = AutoTokenizer.from_pretrained(tmp_path / "tok")
    assert isinstance(reloaded, PaseroTokenizer) and reloaded.separate_vocabs
    expected = tokenizer([SOURCE], text_target=[TARGET])
    assert reloaded([SOURCE], text_target=[TARGET]) == expected
    assert reloaded.batch_decode(expected["labels"], skip_special_tokens=True) == [TARGET]


def test_shared_vocabulary_is_unchanged(vocab_dir):
    """Without a target side nothing changes: labels and decoding use the one dictionary."""
    tokenizer = PaseroTokenizer(bpe_file=str(vocab_dir / "bpecodes"), dict_file=str(vocab_dir / "dict.txt"))
    assert not tokenizer.separate_vocabs and tokenizer.target_vocab_size == tokenizer.vocab_size
    batch = tokenizer([TARGET], text_target=[TARGET])
    assert batch["labels"] == batch["input_ids"]


def test_bad_target_files(vocab_dir, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"missing.txt"):
        separate(vocab_dir, target_dict_file=str(tmp_path / "missing.txt"))
    with pytest.raises(ValueError, match=r"target_spm_file: the target subword model must be of the source's kind"):
        PaseroTokenizer(bpe_file=str(vocab_dir / "bpecodes"), dict_file=str(vocab_dir / "dict.en.txt"),
                        target_spm_file=str(vocab_dir / "bpecodes.es"))
    (tmp_path / "dict.json").write_text('{"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}')
    with pytest.raises(ValueError, match=r"a target dictionary is a fairseq dict.txt"):
        separate(vocab_dir, target_dict_file=str(tmp_path / "dict.json"))
    tokenizer = separate(vocab_dir, target_lang_code=True)
    (tmp_path / "no-codes.txt").write_text("▁y 3\n")
    without_codes = separate(vocab_dir, target_dict_file=str(tmp_path / "no-codes.txt"), target_lang_code=True)
    with pytest.raises(KeyError, match=r"<lang:es> is not in the target dictionary \(.*no-codes.txt\)"):
        without_codes.tgt_lang = "es"
    tokenizer.tgt_lang = "es"  # in both dictionaries
