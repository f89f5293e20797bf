"""PaseroTokenizer as a `transformers` tokenizer: ids, special-token layout, languages, save/load, backends."""

import json
import os
import subprocess
import sys
import textwrap

import pytest
from transformers import AutoTokenizer

import pasero_hf.models  # noqa: F401  (registers the tokenizer class name for AutoTokenizer)
from pasero_hf.tokenization.dictionary import Dictionary
from pasero_hf.tokenization.tokenization_pasero import PaseroTokenizer


@pytest.fixture(scope="module")
def bible_tokenizer(models_dir) -> PaseroTokenizer:
    model = models_dir / "bible-en-es-8k"
    return PaseroTokenizer(bpe_file=str(model / "bpecodes"), dict_file=str(model / "dict.txt"))


def test_ids_match_pasero_decode_preprocessing(bible_tokenizer, bible_dir, edge_dir, models_dir, read_lines):
    """Source ids = dictionary ids of the tokens pasero-decode produces (dict as vocabulary) + </s>, no BOS."""
    dictionary = Dictionary.from_file(models_dir / "bible-en-es-8k" / "dict.txt")
    source = read_lines(bible_dir / "test.en")[:60]
    reference = read_lines(edge_dir / "bible-en-es-8k.vocab.test.en.tok")[:60]
    encoded = bible_tokenizer(source)["input_ids"]
    for ids, tokens in zip(encoded, reference, strict=True):
        assert ids == [dictionary.index(token) for token in tokens.split()] + [2]
    assert bible_tokenizer.eos_token_id == 2 and bible_tokenizer.pad_token_id == 1
    assert bible_tokenizer.unk_token_id == 3 and len(bible_tokenizer) == len(dictionary)


def test_padding_truncation_and_labels(bible_tokenizer):
    batch = bible_tokenizer(
        ["In the beginning God created the heaven and the earth.", "Amen."],
        text_target=["En el principio creó Dios los cielos y la tierra.", "Amén."],
        padding=True,
        truncation=True,
        max_length=6,
        return_tensors="pt",
    )
    assert batch["input_ids"].shape == (2, 6)
    assert batch["input_ids"][0, -1].item() == 2  # truncation keeps the final </s>
    short = batch["input_ids"][1].tolist()
    assert short[short.index(2) + 1 :] == [1] * (5 - short.index(2))
    assert batch["attention_mask"][1].tolist() == [int(i != 1) for i in short]
    assert batch["labels"][0, -1].item() == 2 and 0 not in batch["labels"][0].tolist()


def test_decode_gives_cased_detokenized_text(bible_tokenizer):
    text = "And GOD said, Let there be light: and there was light."
    ids = bible_tokenizer(text)["input_ids"]
    assert bible_tokenizer.decode(ids, skip_special_tokens=True) == text
    assert bible_tokenizer.decode(ids).endswith("light.</s>")
    assert "<T>" in bible_tokenizer.convert_ids_to_tokens(ids)


def test_ids_to_tokens_like_the_base_class(models_dir):
    """The list path of convert_ids_to_tokens is ours (speed): same tokens as transformers' per-id path, added tokens,
    special-token skipping and out-of-range ids included."""
    from transformers import PreTrainedTokenizer

    model = models_dir / "bible-en-es-8k"
    tokenizer = PaseroTokenizer(bpe_file=str(model / "bpecodes"), dict_file=str(model / "dict.txt"))
    tokenizer.add_tokens(["<new_token>"])
    tokenizer.add_special_tokens({"additional_special_tokens": ["<special_new>"]})
    ids = tokenizer("And GOD said: <new_token> <special_new>")["input_ids"] + [0, 1, 3, len(tokenizer) + 5]
    assert tokenizer.convert_ids_to_tokens(ids[1]) == tokenizer.convert_ids_to_tokens(ids[:2])[1]
    for skip in (False, True):
        ours = tokenizer.convert_ids_to_tokens(ids, skip_special_tokens=skip)
        assert ours == PreTrainedTokenizer.convert_ids_to_tokens(tokenizer, ids, skip_special_tokens=skip)
    assert "<new_token>" in ours and "<special_new>" not in ours and "</s>" not in ours


def test_language_codes_like_pasero(models_dir):
    model = models_dir / "TED-top20"
    tokenizer = PaseroTokenizer(
        bpe_file=str(model / "bpecodes"),
        dict_file=str(model / "dict.txt"),
        src_lang="en",
        tgt_lang="fr",
        source_lang_code=True,
        lang_code=True,
        target_lang_code=True,
    )
    batch = tokenizer("Hello world", text_target="Bonjour le monde")
    source = tokenizer.convert_ids_to_tokens(batch["input_ids"])
    target = tokenizer.convert_ids_to_tokens(batch["labels"])
    # source: target language code, then source language code; target: target language code
    assert source[:2] == ["<lang:fr>", "<lang:en>"] and source[-1] == "</s>"
    assert target[0] == "<lang:fr>" and target[-1] == "</s>" and target.count("<lang:en>") == 0
    assert tokenizer.decoder_prefix_ids() == [2, tokenizer.convert_tokens_to_ids("<lang:fr>")]
    tokenizer.tgt_lang = "de"
    assert tokenizer.convert_ids_to_tokens(tokenizer("Hi")["input_ids"])[0] == "<lang:de>"
    assert tokenizer.decode(batch["labels"], skip_special_tokens=True) == "Bonjour le monde"
    with pytest.raises(KeyError, match="<lang:xx>"):
        tokenizer.tgt_lang = "xx"


def test_lang_code_option_needs_a_language(models_dir):
    model = models_dir / "TED-top20"
    tokenizer = PaseroTokenizer(
        bpe_file=str(model / "bpecodes"), dict_file=str(model / "dict.txt"), source_lang_code=True
    )
    with pytest.raises(ValueError, match="src_lang"):
        tokenizer("Hello")
    tokenizer.src_lang = "de"
    assert tokenizer.convert_ids_to_tokens(tokenizer("Hello")["input_ids"])[0] == "<lang:de>"


def test_save_and_reload(bible_tokenizer, tmp_path):
    bible_tokenizer.save_pretrained(tmp_path)
    assert {"bpecodes", "dict.txt", "tokenizer_config.json"} <= set(os.listdir(tmp_path))
    for loaded in (PaseroTokenizer.from_pretrained(tmp_path), AutoTokenizer.from_pretrained(tmp_path)):
        assert type(loaded) is PaseroTokenizer
        text = "Then the LORD God formed man of the dust of the ground."
        assert loaded(text)["input_ids"] == bible_tokenizer(text)["input_ids"]


def test_loads_from_a_pasero_model_directory(fixtures_dir, bible_tokenizer):
    """A Pasero model directory (bpecodes + dict.txt, no tokenizer_config.json) loads directly."""
    tokenizer = PaseroTokenizer.from_pretrained(fixtures_dir / "pasero-tiny-en-es")
    assert tokenizer("Hello")["input_ids"] == bible_tokenizer("Hello")["input_ids"]


def test_sentencepiece_backend(tmp_path, bible_dir):
    import sentencepiece

    sentencepiece.SentencePieceTrainer.train(
        input=str(bible_dir / "valid.en"),
        model_prefix=str(tmp_path / "spm"),
        vocab_size=300,
        minloglevel=2,
        num_threads=1,
    )
    tokenizer = PaseroTokenizer(spm_file=str(tmp_path / "spm.model"), tokenizer_type="sentencepiece")
    processor = sentencepiece.SentencePieceProcessor(model_file=str(tmp_path / "spm.model"))
    text = "And God saw the light, that it was good."
    ids = tokenizer(text)["input_ids"]
    assert ids[:-1] == processor.encode(text) and ids[-1] == tokenizer.eos_token_id
    assert tokenizer.decode(ids, skip_special_tokens=True) == text
    tokenizer.save_pretrained(tmp_path / "saved")
    assert PaseroTokenizer.from_pretrained(tmp_path / "saved")(text)["input_ids"] == ids


def test_hf_tokenizers_backend_with_json_dictionary(tmp_path, bible_dir):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    backend = Tokenizer(models.BPE(unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Metaspace()
    backend.decoder = decoders.Metaspace()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<s>", "<pad>", "</s>", "<unk>"], show_progress=False)
    backend.train([str(bible_dir / "valid.en")], trainer)
    backend.save(str(tmp_path / "tok.json"))
    (tmp_path / "dict.json").write_text(json.dumps(backend.get_vocab()), encoding="utf-8")
    tokenizer = PaseroTokenizer(
        hf_tokenizer_file=str(tmp_path / "tok.json"), dict_json_file=str(tmp_path / "dict.json"), tokenizer_type="hf"
    )
    text = "And God called the light Day."
    ids = tokenizer(text)["input_ids"]
    assert ids == backend.encode(text).ids + [backend.token_to_id("</s>")]
    assert tokenizer.decode(ids, skip_special_tokens=True) == text


def test_remote_code_loads_without_pasero_hf(tmp_path, models_dir):
    """save_pretrained of a tokenizer registered for remote code ships working code: it loads where pasero_hf
    cannot be imported."""
    model = models_dir / "bible-en-es-8k"
    text = "In the beginning God created the heaven and the earth."
    save = textwrap.dedent(f"""
        from pasero_hf.tokenization.tokenization_pasero import PaseroTokenizer
        PaseroTokenizer.register_for_auto_class("AutoTokenizer")
        tokenizer = PaseroTokenizer(bpe_file={str(model / "bpecodes")!r}, dict_file={str(model / "dict.txt")!r})
        tokenizer.save_pretrained({str(tmp_path / "remote")!r})
        print(tokenizer({text!r})["input_ids"])
    """)
    load = textwrap.dedent(f"""
        import sys
        sys.modules["pasero_hf"] = None  # any import of pasero_hf now fails
        from transformers import AutoTokenizer
        tokenizer = AutoTokenizer.from_pretrained({str(tmp_path / "remote")!r}, trust_remote_code=True)
        assert "pasero_hf" not in type(tokenizer).__module__, type(tokenizer).__module__
        print(tokenizer({text!r})["input_ids"])
    """)
    env = {**os.environ, "HF_MODULES_CACHE": str(tmp_path / "modules"), "HF_HUB_OFFLINE": "1"}
    saved = subprocess.run([sys.executable, "-c", save], capture_output=True, text=True, env=env, check=True)
    copied = set(os.listdir(tmp_path / "remote"))
    assert {
        "tokenization_pasero.py",
        "bpe.py",
        "dictionary.py",
        "inline_casing.py",
        "subword_backends.py",
        "file_utils.py",
    } <= copied
    loaded = subprocess.run([sys.executable, "-c", load], capture_output=True, text=True, env=env)
    assert loaded.returncode == 0, loaded.stderr[-2000:]
    assert loaded.stdout.strip().splitlines()[-1] == saved.stdout.strip().splitlines()[-1]
