"""Exactness against the original Pasero: the tiny fixture model, converted, decodes the bundled Bible test set
into exactly the lines the original `pasero-decode` wrote (beam 5 and greedy, max_output_len 100, len_penalty 1.0),
with the same tokens and positional scores (to the 3 decimals Pasero prints) in its verbose output.

The reference files are in tests/fixtures/pasero-tiny-en-es (see its README.md); they were produced by Pasero's code,
not by this project.
"""

from pathlib import Path

import pytest
import torch
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

from pasero_hf.generation.batching import length_sorted_batches
from pasero_hf.generation.beam_search import Hypothesis, pasero_search
from pasero_hf.models.pasero.convert_pasero_checkpoint import convert_pasero_checkpoint

# `pasero-decode` defaults the references were made with
BUFFER_SIZE = 100
BATCH_TOKENS = 4096
MAX_OUTPUT_LEN = 100
LEN_PENALTY = 1.0


@pytest.fixture(scope="module")
def model_dir(fixtures_dir: Path) -> Path:
    return fixtures_dir / "pasero-tiny-en-es"


@pytest.fixture(scope="module")
def converted(model_dir: Path, tmp_path_factory):
    """The fixture converted to a Hugging Face directory, loaded back through the Auto classes."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    output = convert_pasero_checkpoint(model_dir, tmp_path_factory.mktemp("converted") / "pasero-tiny-en-es")
    yield AutoModelForSeq2SeqLM.from_pretrained(output).eval(), AutoTokenizer.from_pretrained(output)
    torch.set_num_threads(threads)


def _decode(model, tokenizer, lines: list[str], beam_size: int) -> list[Hypothesis]:
    """Best hypothesis per line, decoded as `pasero-decode` batches: buffers of lines, sorted by length."""
    encoded = tokenizer(lines)["input_ids"]
    best: list[Hypothesis] = []
    for start in range(0, len(lines), BUFFER_SIZE):
        buffer = encoded[start : start + BUFFER_SIZE]
        results: dict[int, Hypothesis] = {}
        for batch in length_sorted_batches([len(ids) for ids in buffer], BATCH_TOKENS):
            width = max(len(buffer[i]) for i in batch)
            ids = torch.full((len(batch), width), tokenizer.pad_token_id)
            for row, i in enumerate(batch):
                ids[row, : len(buffer[i])] = torch.tensor(buffer[i])
            nbests = pasero_search(
                model, ids, (ids != tokenizer.pad_token_id).long(), beam_size=beam_size,
                max_output_len=MAX_OUTPUT_LEN, len_penalty=LEN_PENALTY,
            )
            results.update({i: nbest[0] for i, nbest in zip(batch, nbests)})
        best += [results[i] for i in range(len(buffer))]
    return best


@pytest.mark.parametrize("mode, beam_size", [("beam5", 5), ("greedy", 1)])
def test_test_set_outputs_equal_the_original(converted, model_dir, bible_dir, mode, beam_size):
    model, tokenizer = converted
    sources = (bible_dir / "test.en").read_text(encoding="utf-8").splitlines()
    references = (model_dir / f"test.{mode}.es").read_text(encoding="utf-8").splitlines()
    assert len(sources) == len(references) == 344
    hypotheses = _decode(model, tokenizer, sources, beam_size)
    outputs = [tokenizer.decode(hyp.tokens, skip_special_tokens=True) for hyp in hypotheses]
    mismatches = [i for i, (ours, theirs) in enumerate(zip(outputs, references)) if ours != theirs]
    assert not mismatches, (
        f"{len(mismatches)}/344 lines differ, first: line {mismatches[0] + 1}\n"
        f"ours:     {outputs[mismatches[0]]}\noriginal: {references[mismatches[0]]}"
    )
    # the weak model repeats itself up to the cap on some lines: the cap rules are part of what matched
    assert any(len(hyp.tokens) == MAX_OUTPUT_LEN for hyp in hypotheses)


def _verbose(path: Path) -> dict[str, list[str]]:
    """`S-i`/`H-i`/`P-i` columns of a Pasero verbose output, in line order."""
    fields: dict[str, list[str]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        kind, _, rest = line.partition("-")
        fields.setdefault(kind, []).append(rest.split("\t", 1)[1])
    return fields


@pytest.mark.parametrize("mode, beam_size", [("beam5", 5), ("greedy", 1)])
def test_first_lines_tokens_and_positional_scores_equal_the_original(converted, model_dir, bible_dir, mode,
                                                                     beam_size):
    model, tokenizer = converted
    verbose = _verbose(model_dir / f"test.first5.{mode}.verbose.hyp.txt")
    sources = (bible_dir / "test.en").read_text(encoding="utf-8").splitlines()[:5]
    # the source tokenization is what the original model saw
    assert [" ".join(tokenizer.convert_ids_to_tokens(ids)) for ids in tokenizer(sources)["input_ids"]] == verbose["S"]
    for hyp, tokens, scores in zip(_decode(model, tokenizer, sources, beam_size), verbose["H"], verbose["P"]):
        assert " ".join(tokenizer.convert_ids_to_tokens(hyp.tokens)) == tokens
        total, per_token = scores.split("\t")
        # Pasero prints negative log-probabilities rounded to 3 decimals
        assert [-score for score in hyp.pos_scores] == pytest.approx([float(s) for s in per_token.split()], abs=1e-3)
        assert -hyp.score == pytest.approx(float(total), abs=1e-2)
