"""`pasero-convert` of a Pasero model trained with `target_dict` (separate source and target vocabularies).

There is no such model from the original Pasero, so the test makes one the way Pasero would have saved it: the tiny
fixture (trained by the original Pasero, shared vocabulary) with a target dictionary that is a shuffled subset of
its dictionary, and decoder embeddings that are the matching rows of its embedding matrix (`shared_embeddings:
false`, the output projection tied to them). That model computes the original's target logits restricted to the
subset, so its greedy outputs are the original's whenever the original's choices are in the subset: the subset keeps
every token the original generates on the test lines, and the outputs must equal the original Pasero's own
`pasero-decode` outputs (tests/fixtures/pasero-tiny-en-es/test.greedy.es). The original Pasero was also run on this
very model (tests/fixtures/pasero-target-dict/reference.json): greedy and beam-5 tokens, text and scores must match.
"""

import json
import random
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

from pasero_hf.cli.convert import main as convert_main
from pasero_hf.generation.text_generator import TextGenerator
from pasero_hf.models.pasero.convert_pasero_checkpoint import ConversionError, convert_pasero_checkpoint
from pasero_hf.tokenization.dictionary import Dictionary
from tests.models.test_pasero_remote_code import run_without_pasero_hf

LINES = 24  # test lines decoded (the original's greedy outputs of these are the reference)
EXTRA_TOKENS = 800  # tokens kept beyond those generated, so that the subset is not only the answers


def _original_greedy_ids(converted_dir: Path, sources: list[str]) -> list[list[int]]:
    """The shared-vocabulary model's greedy outputs (ids after the decoder start, EOS included)."""
    model = AutoModelForSeq2SeqLM.from_pretrained(converted_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(converted_dir)
    batch = tokenizer(sources, padding=True, return_tensors="pt")
    with torch.no_grad():
        generated = model.generate(**batch, num_beams=1, do_sample=False, max_new_tokens=100)
    outputs = []
    for row in generated.tolist():
        row = row[1:]
        outputs.append(row[: row.index(2) + 1] if 2 in row else row)
    return outputs


def build_target_dict_model(tiny: Path, converted_tiny: Path, sources: list[str],
                            model_dir: Path) -> tuple[list[int], list[list[int]]]:
    """Write the 'trained with target_dict' Pasero model directory; returns the kept original ids in new-id order
    and the original's greedy outputs of `sources`.
    (Also used by tests/fixtures/pasero-target-dict/make_reference.py, which decodes it with the original Pasero.)"""
    greedy = _original_greedy_ids(converted_tiny, sources)
    dictionary = Dictionary.from_file(tiny / "dict.txt")
    needed = sorted({index for row in greedy for index in row} | set(range(4, 9)))  # <T> <U> <BT>... always kept
    others = sorted(set(range(4, len(dictionary))) - set(needed))
    rng = random.Random(0)
    kept = needed + rng.sample(others, EXTRA_TOKENS)
    rng.shuffle(kept)
    kept = [0, 1, 2, 3] + [index for index in kept if index >= 4]  # fairseq's specials keep ids 0-3

    shutil.copytree(tiny, model_dir)
    (model_dir / "dict.es.txt").write_text(
        "".join(f"{dictionary.tokens[i]} {dictionary.counts[i]}\n" for i in kept[4:]), encoding="utf-8")
    checkpoint = torch.load(tiny / "model_best.bin", map_location="cpu", weights_only=True)
    weights = checkpoint["model"]
    weights["decoder.embed_tokens.weight"] = weights["encoder.embed_tokens.weight"][kept].clone()
    checkpoint["args"].update(shared_embeddings=False, target_dict="en-es/dict.es.txt")
    torch.save(checkpoint, model_dir / "model_best.bin")
    for name, edit in (("training.yaml", {"shared_embeddings": False, "target_dict": "en-es/dict.es.txt"}),
                       ("inference.yaml", {"target_dict": "dict.es.txt"})):  # what Pasero writes in each
        options = yaml.safe_load((model_dir / name).read_text())
        options.update(edit)
        (model_dir / name).write_text(yaml.safe_dump(options))
    return kept, greedy


@pytest.fixture(scope="module")
def target_dict_model(fixtures_dir, converted_tiny_dir, bible_dir, tmp_path_factory):
    """(Pasero model directory trained 'with target_dict', kept original ids in new-id order, greedy ids)."""
    sources = (bible_dir / "test.en").read_text(encoding="utf-8").splitlines()[:LINES]
    model_dir = tmp_path_factory.mktemp("pasero-target-dict") / "model"
    kept, greedy = build_target_dict_model(fixtures_dir / "pasero-tiny-en-es", converted_tiny_dir, sources, model_dir)
    return model_dir, kept, greedy


@pytest.fixture(scope="module")
def converted(target_dict_model, tmp_path_factory) -> Path:
    model_dir, _, _ = target_dict_model
    output = tmp_path_factory.mktemp("converted-target-dict") / "model"
    assert convert_main([str(model_dir), str(output)]) in (0, None)
    return output


def test_converted_model_has_two_vocabularies(converted, target_dict_model):
    model_dir, kept, _ = target_dict_model
    model = AutoModelForSeq2SeqLM.from_pretrained(converted)
    config = model.config
    assert (config.encoder_vocab_size, config.vocab_size, config.shared_embeddings) == (7328, len(kept), False)
    assert model.get_input_embeddings().weight.shape[0] == 7328
    assert model.get_output_embeddings().weight.shape[0] == len(kept)
    tokenizer = AutoTokenizer.from_pretrained(converted)
    assert tokenizer.separate_vocabs and (tokenizer.vocab_size, tokenizer.target_vocab_size) == (7328, len(kept))
    assert (converted / "target_dict.txt").read_bytes() == (model_dir / "dict.es.txt").read_bytes()
    assert (converted / "dict.txt").read_bytes() == (model_dir / "dict.txt").read_bytes()


def test_logits_are_the_original_rows(converted, converted_tiny_dir, target_dict_model, bible_dir):
    """Teacher-forced on the original's outputs: the logits of target id j are the original's of id kept[j]."""
    _, kept, greedy = target_dict_model
    new_id = {old: new for new, old in enumerate(kept)}
    sources = (bible_dir / "test.en").read_text(encoding="utf-8").splitlines()[:8]
    original = AutoModelForSeq2SeqLM.from_pretrained(converted_tiny_dir).eval()
    model = AutoModelForSeq2SeqLM.from_pretrained(converted).eval()
    tokenizer = AutoTokenizer.from_pretrained(converted)
    batch = tokenizer(sources, padding=True, return_tensors="pt")
    width = max(len(row) for row in greedy[:8])
    old_inputs = torch.tensor([[2] + row[:-1] + [1] * (width - len(row)) for row in greedy[:8]])
    new_inputs = torch.tensor([[new_id[i] for i in row.tolist()] for row in old_inputs])
    with torch.no_grad():
        old_logits = original(**batch, decoder_input_ids=old_inputs).logits
        new_logits = model(**batch, decoder_input_ids=new_inputs).logits
    torch.testing.assert_close(new_logits, old_logits[:, :, kept], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("beam_size", [1, 5])
def test_decoding_gives_the_original_pasero_outputs(converted, target_dict_model, fixtures_dir, bible_dir, beam_size):
    """TextGenerator (what pasero-decode runs) equals the ORIGINAL Pasero decoding this very model
    (pasero-target-dict/reference.json, made by its make_reference.py): tokens, text and scores, greedy and beam 5.
    Greedy outputs are also the original's on the shared-vocabulary fixture. Source tokens are read with the source
    dictionary."""
    _, kept, _ = target_dict_model
    reference = json.loads((fixtures_dir / "pasero-target-dict" / "reference.json").read_text(encoding="utf-8"))
    assert reference["kept_ids"] == kept  # the model the reference was made with
    sources = (bible_dir / "test.en").read_text(encoding="utf-8").splitlines()[:LINES]
    generator = TextGenerator.from_pretrained(converted, beam_size=beam_size, max_output_len=100)
    outputs = [nbest[0] for nbest in generator.decode(*sources, return_scores=True)]
    expected = reference[f"beam_{beam_size}"]
    assert [o["tokens"] for o in outputs] == [e["tokens"] for e in expected]
    assert [o["detok"] for o in outputs] == [e["detok"] for e in expected]
    assert max(abs(o["score"] - e["score"]) for o, e in zip(outputs, expected)) < 1e-4
    if beam_size == 1:
        greedy = (fixtures_dir / "pasero-tiny-en-es" / "test.greedy.es").read_text(encoding="utf-8").splitlines()
        assert [o["detok"] for o in outputs] == greedy[:LINES]
    source_dictionary = Dictionary.from_file(converted / "dict.txt")
    source_ids = generator.tokenizer(sources[0])["input_ids"]
    assert outputs[0]["src_tokens"] == [source_dictionary.tokens[i] for i in source_ids]


def test_ctranslate2_export_keeps_both_vocabularies(converted, fixtures_dir, bible_dir, tmp_path):
    """The exported CTranslate2 model has the two vocabularies and decodes as the original Pasero did."""
    from pasero_hf.export import export_ctranslate2

    exported = export_ctranslate2(converted, tmp_path / "ct2")
    assert not (exported / "shared_vocabulary.json").exists()
    source = json.loads((exported / "source_vocabulary.json").read_text())
    target = json.loads((exported / "target_vocabulary.json").read_text())
    assert source == Dictionary.from_file(converted / "dict.txt").tokens
    assert target == Dictionary.from_file(converted / "target_dict.txt").tokens
    sources = (bible_dir / "test.en").read_text(encoding="utf-8").splitlines()[:LINES]
    references = (fixtures_dir / "pasero-tiny-en-es" / "test.greedy.es").read_text(encoding="utf-8").splitlines()
    generator = TextGenerator.from_pretrained(exported, beam_size=1, max_output_len=100)
    assert [nbest[0]["detok"] for nbest in generator.decode(*sources)] == references[:LINES]


def test_converted_tokenizer_works_as_remote_code(converted, tmp_path, bible_dir):
    """The copied tokenization_pasero.py handles the target dictionary where pasero_hf is not installed."""
    sources = (bible_dir / "test.en").read_text(encoding="utf-8").splitlines()[:3]
    model = AutoModelForSeq2SeqLM.from_pretrained(converted).eval()
    tokenizer = AutoTokenizer.from_pretrained(converted)
    batch = tokenizer(sources, padding=True, return_tensors="pt")
    with torch.no_grad():
        expected = tokenizer.batch_decode(model.generate(**batch, num_beams=3, max_new_tokens=12),
                                          skip_special_tokens=True)
    result = run_without_pasero_hf(tmp_path, converted, with_tokenizer=True, inputs=sources)
    assert result["tokenizer_module"].startswith("transformers_modules.")
    assert result["texts"] == expected


def test_target_dict_with_shared_embeddings_is_refused(target_dict_model, tmp_path):
    model_dir, _, _ = target_dict_model
    broken = tmp_path / "model"
    shutil.copytree(model_dir, broken)
    options = yaml.safe_load((broken / "training.yaml").read_text())
    options["shared_embeddings"] = True
    (broken / "training.yaml").write_text(yaml.safe_dump(options))
    with pytest.raises(ConversionError, match=r"target_dict='en-es/dict.es.txt' with shared_embeddings=True"):
        convert_pasero_checkpoint(broken, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_missing_or_wrong_target_dict_is_named(target_dict_model, tmp_path):
    model_dir, kept, _ = target_dict_model
    broken = tmp_path / "model"
    shutil.copytree(model_dir, broken)
    (broken / "dict.es.txt").unlink()
    with pytest.raises(ConversionError, match=r"inference.yaml: target_dict points to a missing file .*dict.es.txt"):
        convert_pasero_checkpoint(broken, tmp_path / "out")
    shutil.copy(broken / "dict.txt", broken / "dict.es.txt")  # the source dictionary: too many entries
    with pytest.raises(ConversionError, match=rf"target_dict 'dict.es.txt' has 7328 entries but the decoder "
                                              rf"embeddings have {len(kept)} rows"):
        convert_pasero_checkpoint(broken, tmp_path / "out")
    assert not (tmp_path / "out").exists()
