"""What to decode: an input file (or standard input), its languages, an optional reference and an output file.

`get_inference_corpora` turns the `pasero-decode` file and language options into one `InferenceCorpus` per corpus:
it fills the `{src}`, `{tgt}` and `{pair}` placeholders of file names and infers languages from file extensions.
`read_lines` reads a text file line by line and reports invalid UTF-8 with the file name and line number;
`read_pairs` reads a corpus' (source, reference) pairs; `decode_corpus` decodes a whole corpus with a `TextGenerator`,
writing to `<output>.partial` until complete and resuming from what an interrupted run completed (`resume_outputs`).
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import os
import re
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, TextIO

from tqdm.auto import tqdm

from pasero_hf.data.corpora import fill_lang_placeholders
from pasero_hf.generation.inputs import warn_truncated
from pasero_hf.generation.output_format import completed_outputs, detok_of_entry, format_hypothesis
from pasero_hf.metrics import DEFAULT_METRICS, check_metrics, corpus_scores

if TYPE_CHECKING:
    from pasero_hf.generation.text_generator import TextGenerator

logger = logging.getLogger(__name__)

# Extensions that name a language: "en", "fra", "eng_Latn", "zh-Hant"...
_LANG_LIKE = re.compile(r"[A-Za-z]{2,3}([_-][A-Za-z0-9]{2,8})?")
# ...but common file extensions are not languages, even when they look like one
_NOT_LANGS = {
    "txt", "tok", "out", "hyp", "ref", "src", "tgt", "raw", "bpe", "spm", "log", "tsv", "csv", "xml", "gz", "xz",
    "bz2", "zst", "bin", "yml", "json", "jsonl", "yaml", "md", "py", "sh",
}


@dataclasses.dataclass
class InferenceCorpus:
    """One corpus to decode.

    Attributes:
        source_path: input file; None reads standard input.
        source_lang / target_lang: languages of the input and of the output.
        ref_path: reference translations (one per input line) for BLEU/chrF; None: no evaluation.
        output_path: where the outputs go; None writes to standard output; False writes nowhere (API use).
        domain: optional domain (selects domain adapters of Pasero models).
    """

    source_path: str | None
    source_lang: str | None
    target_lang: str | None
    ref_path: str | None = None
    output_path: str | None | bool = None
    domain: str | None = None

    @property
    def corpus_id(self) -> str:
        """Short name for logs: the input file (or `<stdin>`) and the language pair."""
        name = self.source_path or "<stdin>"
        pair = f"{self.source_lang}-{self.target_lang}" if self.source_lang and self.target_lang else ""
        return f"{name} ({pair})" if pair else name


def get_inference_corpus(
    source_path: str | None,
    ref_path: str | None = None,
    output_path: str | None | bool = None,
    source_lang: str | None = None,
    target_lang: str | None = None,
    domain: str | None = None,
) -> InferenceCorpus:
    """One corpus for `TextGenerator.decode_corpus`; languages missing here are inferred from the file extensions."""
    if source_lang is None and source_path:
        source_lang = _lang_from_extension(source_path)
    if target_lang is None and ref_path:
        target_lang = _lang_from_extension(ref_path)
    return InferenceCorpus(source_path, source_lang, target_lang, ref_path, output_path, domain)


def _fill(path: str | None, source_lang: str | None, target_lang: str | None) -> str | None:
    """A file name with `{src}`, `{tgt}` and `{pair}` (= `{src}-{tgt}`) filled in."""
    return fill_lang_placeholders(path, source_lang, target_lang, hint=": give -s and -t, or -l") if path else None


def get_inference_corpora(
    inputs: Sequence[str] | None = None,
    refs: Sequence[str] | None = None,
    outputs: Sequence[str] | None = None,
    eval_prefixes: Sequence[str] | None = None,
    source_langs: Sequence[str] | None = None,
    target_langs: Sequence[str] | None = None,
    lang_pairs: Sequence[str] | None = None,
    model_source_langs: Sequence[str] = (),
    model_target_langs: Sequence[str] = (),
) -> list[InferenceCorpus]:
    """The corpora of one `pasero-decode` call (see the CLI help for the rules).

    Languages come from `-l` pairs, else `-s`/`-t` (one value is broadcast to all corpora), else from the extensions
    of the input and reference files, else from the model when it knows exactly one source/target language.
    A single `-i`/`-r`/`-o` with placeholders is expanded once per language pair.
    """
    if lang_pairs and (source_langs or target_langs):
        raise ValueError("-l/--lang-pairs and -s/-t are exclusive: give either language pairs or source/target languages")
    if eval_prefixes and (inputs or refs):
        raise ValueError("-e/--eval-corpus and -i/-r are exclusive: -e PREFIX means -i PREFIX.{src} -r PREFIX.{tgt}")
    if lang_pairs:
        source_langs, target_langs = [], []
        for pair in lang_pairs:
            parts = pair.split("-")
            if len(parts) != 2 or not all(parts):
                raise ValueError(f"-l/--lang-pairs: invalid language pair {pair!r}, expected SRC-TGT like 'en-es'")
            source_langs.append(parts[0])
            target_langs.append(parts[1])
    source_langs = list(source_langs or [])
    target_langs = list(target_langs or [])
    if source_langs and target_langs:
        source_langs, target_langs = _broadcast(source_langs, target_langs, "-s/--source-lang", "-t/--target-lang")

    if eval_prefixes:
        if not (source_langs and target_langs):
            raise ValueError("-e/--eval-corpus needs the languages: give -s and -t, or -l")
        inputs = [f"{prefix}.{{src}}" for prefix in eval_prefixes]
        refs = [f"{prefix}.{{tgt}}" for prefix in eval_prefixes]
        if len(eval_prefixes) == 1:
            inputs, refs = inputs * len(source_langs), refs * len(source_langs)

    inputs, refs, outputs = list(inputs or []), list(refs or []), list(outputs or [])
    count = max(len(inputs), len(refs), len(outputs), len(source_langs), len(target_langs), 1)
    for name, values in (
        ("-i/--input", inputs), ("-r/--reference", refs), ("-o/--output", outputs),
        ("-s/--source-lang", source_langs), ("-t/--target-lang", target_langs),
    ):
        if len(values) not in (0, 1, count):
            raise ValueError(
                f"{name} has {len(values)} values but {count} corpora are given: give one value or {count}"
            )

    def nth(values: list, index: int):
        if not values:
            return None
        return values[0] if len(values) == 1 else values[index]

    corpora = []
    for index in range(count):
        source_lang, target_lang = nth(source_langs, index), nth(target_langs, index)
        input_path, ref_path, output_path = nth(inputs, index), nth(refs, index), nth(outputs, index)
        if source_lang is None:
            source_lang = _infer_lang(input_path, model_source_langs, "source", "-s/--source-lang")
        if target_lang is None:
            target_lang = _infer_lang(ref_path, model_target_langs, "target", "-t/--target-lang")
        corpora.append(
            InferenceCorpus(
                source_path=_fill(input_path, source_lang, target_lang),
                source_lang=source_lang,
                target_lang=target_lang,
                ref_path=_fill(ref_path, source_lang, target_lang),
                output_path=_fill(output_path, source_lang, target_lang),
            )
        )
    outputs_written = [corpus.output_path for corpus in corpora if corpus.output_path]
    if len(set(outputs_written)) != len(outputs_written):
        raise ValueError(
            "several corpora would write the same -o/--output file: use {src}, {tgt} or {pair} in its name"
        )
    return corpora


def _broadcast(first: list[str], second: list[str], first_name: str, second_name: str) -> tuple[list, list]:
    if len(first) == 1:
        first = first * len(second)
    if len(second) == 1:
        second = second * len(first)
    if len(first) != len(second):
        raise ValueError(f"{first_name} and {second_name} have {len(first)} and {len(second)} values: they must match")
    return first, second


def _lang_from_extension(path: str, known: Sequence[str] = ()) -> str | None:
    """The file extension if it looks like a language code (and is one of `known` when the model lists some)."""
    if "{" in path:  # a placeholder is filled from the languages, never the other way around
        return None
    suffix = Path(path).suffix.lstrip(".")
    if not suffix:
        return None
    if known:
        return suffix if suffix in known else None
    return suffix if _LANG_LIKE.fullmatch(suffix) and suffix.lower() not in _NOT_LANGS else None


def _infer_lang(path: str | None, model_langs: Sequence[str], side: str, option: str) -> str | None:
    lang = _lang_from_extension(path, model_langs) if path else None
    if lang is None and len(model_langs) == 1:
        lang = model_langs[0]
    if lang is None:
        where = f"the extension of '{path}'" if path else "the command line"
        known = f" (the model knows: {', '.join(model_langs)})" if model_langs else ""
        raise ValueError(
            f"cannot infer the {side} language from {where}{known}: give {option} or -l/--lang-pairs"
        )
    return lang


def read_lines(path: str | None, stream: BinaryIO | None = None) -> Iterator[str]:
    """Lines of a UTF-8 text file (or `stream`, or standard input when `path` is None), without line endings.

    Invalid UTF-8 raises a ValueError naming the file and the line number.
    """
    name = path or "<stdin>"
    if path is not None and stream is None:
        if not Path(path).is_file():
            raise FileNotFoundError(f"input file not found: {path}")
        with open(path, "rb") as file:
            yield from _decode_lines(file, name)
    else:
        yield from _decode_lines(stream or sys.stdin.buffer, name)


def _decode_lines(file: BinaryIO, name: str) -> Iterator[str]:
    # readline (not iteration) so that interactive standard input yields each line as soon as it is typed
    line_number = 0
    while raw := file.readline():
        line_number += 1
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            raise ValueError(f"{name}, line {line_number}: invalid UTF-8 ({error.reason} at byte {error.start})") from None
        yield line.rstrip("\r\n")


def read_pairs(corpus: InferenceCorpus) -> Iterator[tuple[str, str | None]]:
    """(source, reference) line pairs of a corpus (reference None without one).

    With a reference, pairs with an empty side are skipped (as in training), and files of different lengths are an
    error naming them.
    """
    if corpus.source_path is not None and not Path(corpus.source_path).is_file():
        raise FileNotFoundError(f"input file not found: {corpus.source_path}")
    if corpus.ref_path is None:
        return ((line, None) for line in read_lines(corpus.source_path))
    if not Path(corpus.ref_path).is_file():
        raise FileNotFoundError(f"reference file not found: {corpus.ref_path}")
    return _nonempty_pairs(corpus)


def _nonempty_pairs(corpus: InferenceCorpus) -> Iterator[tuple[str, str]]:
    line_number = 0
    for source, ref in itertools.zip_longest(read_lines(corpus.source_path), read_lines(corpus.ref_path)):
        line_number += 1
        if source is None or ref is None:
            shorter = corpus.source_path if source is None else corpus.ref_path
            raise ValueError(
                f"{corpus.source_path} and {corpus.ref_path} have different numbers of lines: {shorter} ends after "
                f"line {line_number - 1}"
            )
        if source.strip() and ref.strip():
            yield source, ref


def partial_output_path(output_path: str) -> str:
    """Where outputs are written until the corpus is complete (then renamed to `output_path`)."""
    return f"{output_path}.partial"


def resume_outputs(output_path: str, verbose: bool) -> list[str]:
    """The complete output entries of an earlier run: from `<output>.partial` (interrupted) or `<output>` (finished)."""
    for path in (partial_output_path(output_path), output_path):
        if os.path.isfile(path):
            with open(path, encoding="utf-8", errors="replace", newline="") as file:
                return completed_outputs(file, verbose)
    return []


def decode_corpus(
    generator: TextGenerator,
    corpus: InferenceCorpus,
    *,
    buffer_size: int = 100,
    continue_: bool = False,
    verbose: bool = False,
    bleu_tok: str | None = None,
    teacher_forcing: bool = False,
    return_layers: Sequence[str] = (),
    progress: bool | None = None,
    output_stream: TextIO | None = None,
    metrics: Sequence[str] | None = None,
    eval_lc: bool = False,
    spbleu_model: str | None = None,
    **options: Any,
) -> list[list[dict[str, Any]]]:
    """`TextGenerator.decode_corpus` (see there): `options` are `DecodingOptions` fields; sets `generator.metrics`."""
    if metrics is not None:
        check_metrics(metrics, spbleu_model)  # before decoding anything
    if buffer_size < 1:
        raise ValueError(f"buffer_size must be >= 1, got {buffer_size}")
    if teacher_forcing and corpus.ref_path is None:
        raise ValueError("teacher forcing needs a reference file (-r/--reference)")
    if continue_ and not corpus.output_path:
        raise ValueError("--continue needs an output file (-o/--output)")
    generator.metrics = {}
    pairs = read_pairs(corpus)
    output_path = corpus.output_path if isinstance(corpus.output_path, str) else None
    partial_path = partial_output_path(output_path) if output_path else None
    done = resume_outputs(output_path, verbose) if continue_ else []
    if output_path:
        os.makedirs(os.path.dirname(os.path.abspath(output_path)), exist_ok=True)

    kept_refs: list[str] = []
    hypotheses: list[str] = []
    outputs: list[list[dict[str, Any]]] = []
    truncated = 0
    layers = list(return_layers) + ([generator.alignment_layer()] if verbose else [])
    out_file = open(partial_path, "w", encoding="utf-8") if partial_path else None
    sink = out_file if out_file else (output_stream or (sys.stdout if corpus.output_path is None else None))
    try:
        for entry in done:
            pair = next(pairs, None)
            if pair is None:
                break
            kept_refs.append(pair[1])
            hypotheses.append(detok_of_entry(entry, verbose))
            if sink:
                sink.write(entry + "\n")
        if done:
            logger.warning("%s: %d lines already decoded, decoding the rest", output_path, len(done))
        bar = tqdm(
            desc=f"decoding {corpus.corpus_id}", unit=" lines", file=sys.stderr,
            disable=(not progress) if progress is not None else (corpus.source_path is None),
        )
        line_id = len(hypotheses)
        while buffer := list(itertools.islice(pairs, buffer_size)):
            refs = [ref for _, ref in buffer]
            nbests, count = generator.decode_counting_truncation(
                [source for source, _ in buffer], source_lang=corpus.source_lang, target_lang=corpus.target_lang,
                domain=corpus.domain, teacher_forcing=refs if teacher_forcing else None, return_scores=verbose,
                return_layers=layers, options=options,
            )
            truncated += count
            outputs += nbests
            for nbest, ref in zip(nbests, refs):
                hypotheses.append(nbest[0]["detok"])
                if ref is not None:
                    kept_refs.append(ref)
                if sink:
                    sink.write(format_hypothesis(nbest[0], line_id, verbose) + "\n")
                line_id += 1
            if sink:
                sink.flush()
            bar.update(len(buffer))
        bar.close()
    finally:
        if out_file:
            out_file.close()
    if partial_path:
        os.replace(partial_path, output_path)
    warn_truncated(truncated)
    if corpus.ref_path is not None and hypotheses:
        generator.metrics = corpus_scores(
            hypotheses, kept_refs, bleu_tok=bleu_tok or default_bleu_tok(corpus.target_lang),
            metrics=DEFAULT_METRICS if metrics is None else metrics, lowercase=eval_lc, spbleu_model=spbleu_model)
    return outputs


def default_bleu_tok(target_lang: str | None) -> str:
    """sacrebleu's tokenizer for a target language: 'zh' for Chinese (as Pasero), '13a' otherwise."""
    lang = (target_lang or "").lower()
    return "zh" if lang.startswith(("zh", "zho", "cmn")) else "13a"
