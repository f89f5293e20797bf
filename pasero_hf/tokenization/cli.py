"""Command-line tools for Pasero BPE: pasero-tokenize, pasero-detokenize, pasero-build-dict, pasero-build-tokenizer.

They stream line by line (one output line per input line, empty lines included) and import neither torch nor
transformers, so they start fast.
"""

import argparse
import contextlib
import os
import sys
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import TextIO

from .bpe import BPEOptions, PaseroBPE
from .dictionary import (
    build_dictionary,
    check_vocabulary_coverage,
    lang_code,
    load_vocabulary,
    strip_leading_tags,
    write_dict_file,
)
from .inline_casing import detokenize


@contextlib.contextmanager
def _open_streams(input_path: str | None, output_path: str | None) -> Iterator[tuple[TextIO, TextIO]]:
    """Input and output text streams (stdin/stdout by default). A file output is written to a temporary path and
    renamed at the end, so an interrupted run leaves no half-written file."""
    if input_path and not os.path.isfile(input_path):
        raise SystemExit(f"error: input file not found: {input_path}")
    # Undecodable bytes pass through unchanged rather than stopping a long stream.
    for stream in (sys.stdin, sys.stdout):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(encoding="utf-8", errors="surrogateescape")
    infile = open(input_path, encoding="utf-8", errors="surrogateescape") if input_path else sys.stdin
    tmp_path = f"{output_path}.tmp{os.getpid()}" if output_path else None
    outfile = open(tmp_path, "w", encoding="utf-8", errors="surrogateescape", newline="\n") if tmp_path else sys.stdout
    try:
        yield infile, outfile
        if tmp_path:
            outfile.close()
            os.replace(tmp_path, output_path)
    finally:
        if input_path:
            infile.close()
        if tmp_path:
            outfile.close()
            if os.path.exists(tmp_path):
                os.remove(tmp_path)


def _line_blocks(infile: TextIO, progress: bool, errors: str = "strict", name: str = "<stdin>",
                 size: int = 1 << 16) -> Iterator[list[str]]:
    """Input lines without their line break, in blocks of about `size` characters; a tqdm bar on stderr when
    `progress`.

    Lines are decoded with `surrogateescape`; with `errors="strict"`, the first line that is not UTF-8 text (or holds
    NUL bytes: binary or compressed input) stops with its file and line number; "replace" writes U+FFFD for
    undecodable bytes; "surrogateescape" passes them through unchanged. A block is read, checked and split at once:
    no per-line work in Python (from a terminal, a block is one line).
    """
    if infile.isatty():  # typed lines: each is answered at once
        size = 1
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(unit=" lines", file=sys.stderr, mininterval=1.0)
    done = 0  # lines before this block
    while True:
        text = "".join(infile.readlines(size))
        if not text:
            break
        if errors != "surrogateescape":
            text = _checked_text(text, errors, name, done)
        lines = text.split("\n")
        if text.endswith("\n"):
            lines.pop()
        done += len(lines)
        if bar is not None:
            bar.update(len(lines))
        yield lines
    if bar is not None:
        bar.close()


def _checked_text(text: str, errors: str, name: str, done: int) -> str:
    """`text` (whole lines after `done` earlier ones) with undecodable bytes replaced (errors="replace"), or a
    `SystemExit` naming the first line that is not UTF-8 text or holds a NUL byte (errors="strict")."""
    try:
        text.encode("utf-8")
        bad = None
    except UnicodeEncodeError as error:
        if errors == "replace":
            return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        bad = error.start
    nul = text.find("\0") if errors == "strict" else -1
    if bad is None and nul == -1:
        return text
    bad_line = None if bad is None else text.count("\n", 0, bad)
    nul_line = None if nul == -1 else text.count("\n", 0, nul)
    if bad_line is not None and (nul_line is None or bad_line <= nul_line):
        byte = ord(text[bad]) - 0xDC00
        raise SystemExit(f"error: {name}:{done + bad_line + 1}: not UTF-8 text (byte 0x{byte:02x}); binary or "
                         "compressed input? (--errors replace writes U+FFFD instead)")
    raise SystemExit(f"error: {name}:{done + nul_line + 1}: binary data (NUL byte); binary or compressed input?")


def _lines(infile: TextIO, progress: bool, errors: str = "strict", name: str = "<stdin>") -> Iterator[str]:
    """Input lines without their line break, one by one (see `_line_blocks`)."""
    for lines in _line_blocks(infile, progress, errors, name):
        yield from lines


def _add_io_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-i", "--input", help="input file (default: standard input)")
    parser.add_argument("-o", "--output", help="output file (default: standard output)")
    parser.add_argument("--progress", action="store_true", help="show a progress bar on standard error")
    parser.add_argument("--errors", choices=("strict", "replace", "surrogateescape"), default="strict",
                        help="input that is not UTF-8: stop with its file and line (strict, default), write U+FFFD "
                             "(replace) or pass the bytes through (surrogateescape)")


def _run_streaming(main) -> None:
    try:
        main()
    except BrokenPipeError:
        # the reader (e.g. `head`) went away: stop quietly, without a traceback
        sys.stdout = None
    except KeyboardInterrupt:
        raise SystemExit(130) from None


def tokenize_main(argv: Sequence[str] | None = None) -> None:
    """`pasero-tokenize BPECODES [-i IN] [-o OUT]`: text -> space-separated Pasero subwords, line by line."""
    parser = argparse.ArgumentParser(prog="pasero-tokenize", description=tokenize_main.__doc__)
    parser.add_argument("bpecodes", help="Pasero BPE model (bpecodes file)")
    _add_io_args(parser)
    parser.add_argument("--vocabulary", help="dict.txt: merged subwords outside it are split back into their parts")
    parser.add_argument("-t", "--threshold", type=int, help="only keep vocabulary entries with at least this count")
    parser.add_argument("--unk", help="replace tokens outside the vocabulary with this ('{token}' = the token)")
    parser.add_argument("--threads", type=int, default=1,
                        help="processes tokenizing blocks of lines in parallel, sharing the words they encode; output "
                             "identical and in input order (default: 1; worth it for big files)")
    args = parser.parse_args(argv)
    if args.threshold is not None and not args.vocabulary:
        parser.error("--threshold needs --vocabulary")
    if args.threads < 1:
        parser.error(f"--threads must be >= 1, got {args.threads}")
    vocabulary = load_vocabulary(args.vocabulary, args.threshold) if args.vocabulary else None
    try:
        bpe = PaseroBPE.from_file(args.bpecodes, vocabulary=vocabulary)
    except FileNotFoundError as error:
        raise SystemExit(f"error: {error}") from None

    def run() -> None:
        with _open_streams(args.input, args.output) as (infile, outfile):
            blocks = _line_blocks(infile, args.progress, args.errors, args.input or "<stdin>")
            if args.threads == 1:
                for lines in blocks:
                    outfile.write(_joined(bpe.tokenize_to_strings(lines, unk=args.unk)))
                return
            from .parallel import tokenize_in_processes

            for lines in tokenize_in_processes(bpe, blocks, args.threads, unk=args.unk):
                outfile.write(_joined(lines))

    _run_streaming(run)


def _joined(lines: list[str]) -> str:
    return "\n".join(lines) + "\n" if lines else ""


def detokenize_main(argv: Sequence[str] | None = None) -> None:
    """`pasero-detokenize [-i IN] [-o OUT]`: Pasero subwords -> text (leading <lang:xx>/<domain:xx> tags dropped)."""
    parser = argparse.ArgumentParser(prog="pasero-detokenize", description=detokenize_main.__doc__)
    _add_io_args(parser)
    args = parser.parse_args(argv)

    def run() -> None:
        with _open_streams(args.input, args.output) as (infile, outfile):
            for line in _lines(infile, args.progress, args.errors, args.input or "<stdin>"):
                outfile.write(detokenize(strip_leading_tags(line.split())) + "\n")

    _run_streaming(run)


def _add_dict_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dict-min-freq", type=int, default=10, help="drop entries rarer than this (default: 10)")
    parser.add_argument("--dict-placeholders", type=int, default=0, help="add this many madeupwordNNNN entries")
    parser.add_argument(
        "--dict-padding-factor",
        type=int,
        default=8,
        help="pad the size (+ the 4 special tokens) to a multiple of this (default: 8)",
    )
    parser.add_argument("--dict-custom-symbols", nargs="*", default=[], help="add these symbols")
    parser.add_argument("--dict-max-size", type=int, help="maximum number of entries")


def _build_dictionary(counts: Counter, args: argparse.Namespace, custom_symbols: Sequence[str] = ()) -> list:
    return build_dictionary(
        counts,
        min_freq=args.dict_min_freq,
        custom_symbols=list(args.dict_custom_symbols) + list(custom_symbols),
        placeholders=args.dict_placeholders,
        padding_factor=args.dict_padding_factor,
        max_size=args.dict_max_size,
    )


def build_dict_main(argv: Sequence[str] | None = None) -> None:
    """`pasero-build-dict < tokenized > dict.txt`: a Pasero/fairseq dictionary from tokenized text."""
    parser = argparse.ArgumentParser(prog="pasero-build-dict", description=build_dict_main.__doc__)
    _add_io_args(parser)
    _add_dict_args(parser)
    args = parser.parse_args(argv)

    def run() -> None:
        with _open_streams(args.input, args.output) as (infile, outfile):
            counts: Counter = Counter()
            for line in _lines(infile, args.progress, args.errors, args.input or "<stdin>"):
                counts.update(line.split())
            outfile.writelines(f"{token} {count}\n" for token, count in _build_dictionary(counts, args))

    _run_streaming(run)


def build_tokenizer_main(argv: Sequence[str] | None = None) -> None:
    """`pasero-build-tokenizer -i FILES... -o BPECODES -d DICT -s N`: train a Pasero BPE model and its dictionary."""
    parser = argparse.ArgumentParser(prog="pasero-build-tokenizer", description=build_tokenizer_main.__doc__)
    parser.add_argument(
        "-i",
        "--inputs",
        nargs="+",
        required=True,
        metavar="PATH",
        help="training text; with several files, each name ends with its language (train.de)",
    )
    parser.add_argument("-o", "--output", required=True, metavar="BPECODES", help="output BPE model")
    parser.add_argument("-d", "--dict-path", help="output dictionary (fairseq dict.txt) covering all languages")
    parser.add_argument(
        "-s", "--symbols", dest="num_merges", type=int, default=8000, help="number of merge operations (default: 8000)"
    )
    parser.add_argument(
        "--temperature",
        type=float,
        default=1.0,
        help="T > 1 gives lower-resource languages (files) more weight (default: 1)",
    )
    parser.add_argument(
        "--lang-codes",
        nargs="*",
        help="add <lang:xx> tokens to the dictionaries (no value: languages of the input files)",
    )
    parser.add_argument(
        "--vocab-path", help="also write one dictionary per language: PATH with '{lang}' replaced, or PATH.LANG"
    )
    parser.add_argument("--nfkc", action="store_true", help="apply Unicode NFKC normalization")
    parser.add_argument(
        "--no-inline-case",
        dest="inline_case",
        action="store_false",
        help="keep case in the subwords instead of <T>/<U> tokens",
    )
    parser.add_argument("--protect-regex", help="spans matching this regular expression are kept verbatim")
    parser.add_argument(
        "--tokenization",
        type=int,
        default=2,
        choices=range(5),
        help="word-splitting aggressiveness, 0 (none) to 4 (default: 2)",
    )
    parser.add_argument(
        "--no-split-by-script",
        dest="split_by_script",
        action="store_false",
        help="do not split words where the Unicode script changes",
    )
    parser.add_argument("--threads", type=int, default=1, help="processes used to count words (default: 1)")
    parser.add_argument("-v", "--verbose", action="store_true", help="progress bars and a summary on stderr")
    _add_dict_args(parser)
    args = parser.parse_args(argv)
    for path in args.inputs:
        if not os.path.isfile(path):
            parser.error(f"input file not found: {path}")

    from .bpe_training import train_bpe

    options = BPEOptions(
        inline_case=args.inline_case, nfkc=args.nfkc, protect_regex=args.protect_regex, tokenization=args.tokenization
    )
    try:
        result = train_bpe(
            args.inputs,
            args.num_merges,
            options,
            temperature=args.temperature,
            split_by_script=args.split_by_script,
            threads=args.threads,
            progress=args.verbose,
        )
    except ValueError as error:  # input that is not text: file and line, no traceback, nothing written
        raise SystemExit(f"error: {error}") from None
    result.bpe.save(args.output)

    lang_codes: list[str] = []
    if args.lang_codes is not None:
        langs = args.lang_codes or [lang for lang in result.subword_counts if lang != "any"]
        lang_codes = sorted({lang_code(lang) for lang in langs})
    total = sum(result.subword_counts.values(), Counter())
    if args.dict_path:
        entries = _build_dictionary(total, args, lang_codes)
        write_dict_file(args.dict_path, entries)
        if args.verbose:  # rare subwords below --dict-min-freq are expected to be missing
            report = check_vocabulary_coverage(total, (token for token, _ in entries))
            print(f"{args.dict_path}: {report}", file=sys.stderr)
    if args.vocab_path:
        for lang, counts in result.subword_counts.items():
            path = (
                args.vocab_path.replace("{lang}", lang) if "{lang}" in args.vocab_path else f"{args.vocab_path}.{lang}"
            )
            write_dict_file(path, _build_dictionary(counts, args, lang_codes))
    if args.verbose:
        print(f"{len(result.bpe)} merges -> {args.output}", file=sys.stderr)
