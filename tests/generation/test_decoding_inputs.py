"""Decoding options, corpus definitions, batching and output formats: the pieces around the model."""

import json

import numpy as np
import pytest

from pasero_hf.generation.batching import length_sorted_batches
from pasero_hf.generation.decoding_options import DecodingOptions, read_generation_config
from pasero_hf.generation.inference_corpus import get_inference_corpora, get_inference_corpus, read_lines
from pasero_hf.generation.output_format import alignment, completed_outputs, detok_of_entry, format_hypothesis


def test_options_accept_pasero_and_hf_names_and_reject_the_rest():
    options = DecodingOptions().replace({"num_beams": 3, "max_output_len": 9, "top_p": 0.5, "do_sample": True})
    assert (options.beam_size, options.max_output_len, options.sampling_topp, options.sampling) == (3, 9, 0.5, True)
    with pytest.raises(ValueError, match="unknown decoding option 'beams' in test"):
        DecodingOptions().replace({"beams": 3}, origin="test")
    for bad, message in (
        ({"beam_size": 0}, "beam_size must be >= 1"),
        ({"sampling_topp": 1.5}, r"sampling_topp must be in \(0, 1\]"),
        ({"temperature": 0}, "temperature must be > 0"),
        ({"search": "fast"}, "search must be"),
    ):
        with pytest.raises(ValueError, match=message):
            DecodingOptions().replace(bad)


def test_generation_config_defaults(tmp_path):
    (tmp_path / "generation_config.json").write_text(json.dumps({"num_beams": 4, "max_length": 50, "top_k": None}))
    assert read_generation_config(tmp_path) == {"beam_size": 4, "max_output_len": 50}
    (tmp_path / "generation_config.json").write_text("{bad json")
    with pytest.raises(ValueError, match="generation_config.json: invalid JSON at line 1"):
        read_generation_config(tmp_path)


def test_languages_are_inferred_from_extensions_and_placeholders_filled():
    corpora = get_inference_corpora(inputs=["data/test.en", "data/test.de"], refs=["data/test.fr"])
    assert [(c.source_lang, c.target_lang) for c in corpora] == [("en", "fr"), ("de", "fr")]
    assert [c.ref_path for c in corpora] == ["data/test.fr", "data/test.fr"]

    corpora = get_inference_corpora(lang_pairs=["en-fr", "de-fr"], eval_prefixes=["flores/dev"], outputs=["out.{pair}"])
    assert [(c.source_path, c.ref_path, c.output_path) for c in corpora] == [
        ("flores/dev.en", "flores/dev.fr", "out.en-fr"),
        ("flores/dev.de", "flores/dev.fr", "out.de-fr"),
    ]
    corpora = get_inference_corpora(inputs=["test.{src}"], source_langs=["en", "de"], target_langs=["es"])
    assert [(c.source_path, c.target_lang) for c in corpora] == [("test.en", "es"), ("test.de", "es")]
    # a model that knows a single target language needs no -t
    (corpus,) = get_inference_corpora(inputs=["test.en"], model_target_langs=["es"])
    assert (corpus.source_lang, corpus.target_lang, corpus.output_path) == ("en", "es", None)
    assert get_inference_corpus("a.en", "a.es").target_lang == "es"


def test_ambiguous_or_contradictory_corpus_options_are_errors():
    with pytest.raises(ValueError, match="cannot infer the target language .*give -t/--target-lang"):
        get_inference_corpora(inputs=["test.en"])
    with pytest.raises(ValueError, match="cannot infer the source language from the extension of 'input.txt'.*"
                       "the model knows: en, de"):
        get_inference_corpora(inputs=["input.txt"], target_langs=["fr"], model_source_langs=["en", "de"])
    with pytest.raises(ValueError, match="-l/--lang-pairs and -s/-t are exclusive"):
        get_inference_corpora(lang_pairs=["en-fr"], source_langs=["en"])
    with pytest.raises(ValueError, match="invalid language pair 'enfr'"):
        get_inference_corpora(lang_pairs=["enfr"])
    with pytest.raises(ValueError, match="-o/--output has 2 values but 3 corpora"):
        get_inference_corpora(inputs=["a.en", "b.en", "c.en"], outputs=["x", "y"], target_langs=["fr"])
    with pytest.raises(ValueError, match="several corpora would write the same -o/--output"):
        get_inference_corpora(inputs=["a.en", "b.en"], outputs=["out.txt"], target_langs=["fr"])


def test_invalid_utf8_is_reported_with_file_and_line(tmp_path):
    path = tmp_path / "input.en"
    path.write_bytes(b"good line\nsecond ok\n" + b"bad \xff byte\nlast\n")
    lines = read_lines(str(path))
    assert next(lines) == "good line" and next(lines) == "second ok"
    with pytest.raises(ValueError, match=r"input.en, line 3: invalid UTF-8"):
        next(lines)


def test_batches_cover_every_item_within_the_token_budget():
    lengths = [5, 40, 3, 12, 12, 7, 100, 1]
    batches = length_sorted_batches(lengths, max_tokens=40, max_lines=3)
    assert sorted(i for batch in batches for i in batch) == list(range(len(lengths)))
    assert batches[0] == [6]  # too long for the budget: alone, never dropped
    for batch in batches:
        assert len(batch) <= 3
        assert len(batch) == 1 or len(batch) * max(lengths[i] for i in batch) <= 40
    sizes = [max(lengths[i] for i in batch) for batch in batches]
    assert sizes == sorted(sizes, reverse=True)


def test_alignment_skips_tags():
    attention = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8], [0.5, 0.1, 0.4]])
    assert alignment(["<T>", "▁hello", "</s>"], attention) == [1, 1, 1]
    assert alignment(["▁a", "▁b", "▁c"], attention[:, None, :].repeat(2, axis=1)) == [0, 2, 0]


def test_verbose_format_and_resuming():
    hyp = {
        "src_tokens": ["▁hi", "</s>"], "prompt_tokens": ["</s>"], "tokens": ["▁hola", "</s>"], "detok": "Hola",
        "score": 1.5, "pos_scores": [1.0, 0.5], "dec_1_cross_attn": np.array([[[0.9, 0.1]], [[0.2, 0.8]]]),
    }
    text = format_hypothesis(hyp, 3, verbose=True)
    assert text.split("\n") == [
        "S-3\t▁hi </s>", "A-3\t0 0", "I-3\t</s>", "H-3\t▁hola </s>", "D-3\tHola", "P-3\t1.500\t1.000 0.500",
    ]
    assert format_hypothesis(hyp, 3) == "Hola"
    assert format_hypothesis({**hyp, "detok": "two\nlines\r\n"}, 0) == "two\\nlines\\n"
    first = format_hypothesis(hyp, 0, verbose=True).replace("Hola", "Uno")
    lines = [line + "\n" for line in (first + "\n" + text).split("\n")]
    entries = completed_outputs(lines[:-1], verbose=True)  # the second entry lost its P- line
    assert [detok_of_entry(e, True) for e in entries] == ["Uno"]
    assert completed_outputs(["a\n", "b\n", "partial"], verbose=False) == ["a", "b"]
