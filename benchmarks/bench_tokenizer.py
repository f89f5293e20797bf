"""Tokenizer speed: encoding the bundled Bible train text (en + es) and training 8000 merges.

Compared in the same process: our Pasero BPE, SentencePiece BPE and `tokenizers` BPE (both trained here on the
same text with an 8000-piece vocabulary), and the original Pasero tokenizer when `--pasero-src` points at an
extracted naver/pasero tree (imported at run time, never vendored). Output identity with the original is checked.

    python benchmarks/bench_tokenizer.py [--pasero-src /tmp/pasero-orig] [--repeats 5] [--no-update]
"""

import argparse
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    in_child,
    machine_info,
    markdown_table,
    peak_rss_mb,
    record_bars,
    summarize,
    time_repeats,
    update_results,
)

from pasero_hf.data.sample_data import bible_en_es_dir  # noqa: E402
from pasero_hf.tokenization import PaseroBPE, load_vocabulary, train_bpe  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
BPE_MODEL = REPO / "tests" / "fixtures" / "pasero-models" / "bible-en-es-8k"


def read_lines(path: Path) -> list[str]:
    with open(path, encoding="utf-8") as text_file:
        return text_file.read().splitlines()


def load_original(pasero_src: str):
    """The original tokenizer class, imported from an extracted naver/pasero tree (its tokenizer needs no torch)."""
    sys.path.insert(0, pasero_src)
    from pasero.tokenizers.pasero_tokenizer import PaseroTokenizer as OriginalTokenizer

    return OriginalTokenizer


def train_sentencepiece(paths: list[Path], workdir: Path):
    import sentencepiece

    sentencepiece.SentencePieceTrainer.train(
        input=",".join(map(str, paths)),
        model_prefix=str(workdir / "spm"),
        vocab_size=8000,
        model_type="bpe",
        minloglevel=2,
        num_threads=1,
    )
    return sentencepiece.SentencePieceProcessor(model_file=str(workdir / "spm.model"))


def train_hf_bpe(paths: list[Path]):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
    tokenizer.decoder = decoders.Metaspace()
    tokenizer.train([str(path) for path in paths], trainers.BpeTrainer(vocab_size=8000, show_progress=False))
    return tokenizer


def time_training(paths: list[str], pasero_src: str | None, repeats: int, workdir: str, queue) -> None:
    """Puts in `queue` the seconds of each training run, ours and the original's alternately (2 processes each), and
    whether their merges are identical."""
    # A spawned process makes spawn the default start method of its own pools: both trainers' worker processes would
    # then re-import everything (seconds each). Use this platform's usual default, as a plain command does.
    multiprocessing.set_start_method("fork", force=True)
    ours, original = [], []
    original_output = Path(workdir) / "original.bpecodes"
    trainer = load_original(pasero_src) if pasero_src else None
    for _ in range(repeats):
        start = time.perf_counter()
        merges = train_bpe(paths, 8000, threads=2).bpe.merges
        ours.append(time.perf_counter() - start)
        if trainer is not None:
            original += time_repeats(
                lambda: trainer.train(paths, output=str(original_output), num_symbols=8000, threads=2), 1, 0
            )
    identical = trainer is not None and original_output.read_text(encoding="utf-8").splitlines()[1:] == [
        f"{a} {b}" for a, b in merges
    ]
    queue.put((ours, original, identical, peak_rss_mb()))


def train_row(name: str, times: list[float], rss: float, note: str) -> list:
    stats = summarize(times)
    note = f"{note}; " if note else ""
    return [
        f"train 8000 merges: {name}",
        "",
        "",
        "",
        stats["median"],
        rss,
        f"{note}min {stats['min']:.2f} s, max {stats['max']:.2f} s",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pasero-src", default=os.environ.get("PASERO_SRC") or None,
                        help="extracted naver/pasero tree, to compare with the original tokenizer (default: $PASERO_SRC)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--train-repeats", type=int, default=3, help="paired with the original's when compared")
    parser.add_argument("--no-update", action="store_true", help="do not rewrite benchmarks/RESULTS.md")
    args = parser.parse_args()

    data = bible_en_es_dir()
    paths = [data / "train.en", data / "train.es"]
    lines = read_lines(paths[0]) + read_lines(paths[1])
    n = len(lines)
    rows = []

    def encode_row(name: str, fn, repeats: int = args.repeats, note: str = "") -> float:
        stats = summarize(time_repeats(fn, repeats=repeats, warmup=1))
        rows.append(
            [
                f"encode: {name}",
                n / stats["median"],
                n / stats["max"],
                n / stats["min"],
                stats["median"],
                peak_rss_mb(),
                note,
            ]
        )
        print(f"{name}: {n / stats['median']:,.0f} lines/s", file=sys.stderr)
        return stats["median"]

    ours = PaseroBPE.from_file(BPE_MODEL / "bpecodes")
    ours_median = encode_row("pasero-hf PaseroBPE", lambda: [ours.tokenize(line) for line in lines])
    blocks = PaseroBPE.from_file(BPE_MODEL / "bpecodes")
    encode_row("pasero-hf PaseroBPE.tokenize_to_strings", lambda: blocks.tokenize_to_strings(lines),
               note="pasero-tokenize's path: one output line per input line")
    with_vocab = PaseroBPE.from_file(BPE_MODEL / "bpecodes", vocabulary=load_vocabulary(BPE_MODEL / "dict.txt"))
    encode_row("pasero-hf PaseroBPE + dict as vocabulary", lambda: [with_vocab.tokenize(line) for line in lines])

    from pasero_hf.tokenization.tokenization_pasero import PaseroTokenizer

    hf_tokenizer = PaseroTokenizer(bpe_file=str(BPE_MODEL / "bpecodes"), dict_file=str(BPE_MODEL / "dict.txt"))
    encode_row(
        "pasero-hf PaseroTokenizer(batch) -> ids",
        lambda: hf_tokenizer(lines)["input_ids"],
        repeats=3,
        note="transformers PythonBackend overhead",
    )

    encode_ratios = []
    if args.pasero_src:
        original = load_original(args.pasero_src)(str(BPE_MODEL / "bpecodes"))
        mismatches = sum(ours.tokenize(line) != original.tokenize(line) for line in lines)
        original_median = encode_row(
            "original Pasero",
            lambda: [original.tokenize(line) for line in lines],
            note=f"{mismatches} lines differ from ours",
        )
        # Load changes from second to second here: pair each of our runs with an original run right after it.
        for _ in range(args.repeats):
            ours_seconds = time_repeats(lambda: [ours.tokenize(line) for line in lines], 1, 0)[0]
            original_seconds = time_repeats(lambda: [original.tokenize(line) for line in lines], 1, 0)[0]
            encode_ratios.append(original_seconds / ours_seconds)

    with tempfile.TemporaryDirectory() as workdir:
        spm = train_sentencepiece(paths, Path(workdir))
        encode_row("SentencePiece BPE (batch)", lambda: spm.encode(lines, out_type=str), note="8000 pieces")
        hf_bpe = train_hf_bpe(paths)
        encode_row("tokenizers BPE (encode_batch)", lambda: hf_bpe.encode_batch(lines), note="8000 pieces")

        # in a fresh process: the encoders above left a large heap here, which slows both trainers down
        ours_train, original_train, identical, train_rss = in_child(
            time_training, [str(p) for p in paths], args.pasero_src, args.train_repeats, workdir
        )
        train_ratios = [original / ours for ours, original in zip(ours_train, original_train)]
        rows.append(train_row("pasero-hf (2 processes)", ours_train, train_rss,
                              "peak RSS: the fresh process that ran both trainers"))
        if args.pasero_src:
            rows.append(
                train_row("original Pasero (2 processes)", original_train, train_rss, f"identical merges: {identical}")
            )

    headers = [
        "task",
        "lines/s (median)",
        "lines/s (worst)",
        "lines/s (best)",
        "seconds (median)",
        "peak RSS so far (MiB)",
        "note",
    ]
    table = markdown_table(headers, rows)
    notes = [
        f"{n:,} lines (Bible train en+es), {args.repeats} timed runs after 1 warm-up (word caches warm).",
        "Each row ran in this process, one after the other: worst/best columns show the machine's noise.",
    ]
    paired = {}
    for task, ratios in (("Encoding", encode_ratios), ("Training", train_ratios)):
        if ratios:
            paired[task] = (
                f"paired runs: median {statistics.median(ratios):.1f}x (min {min(ratios):.1f}x, max {max(ratios):.1f}x "
                f"over {len(ratios)} pairs)"
            )
            notes.append(f"{task} speed-up over the original, {paired[task]}.")
    markdown = table + "\n\n" + "\n".join(f"- {note}" for note in notes)
    print(markdown)
    print(machine_info())
    if not args.no_update:
        command = "python benchmarks/bench_tokenizer.py" + (
            f" --pasero-src {args.pasero_src}" if args.pasero_src else ""
        )
        update_results("Tokenizer", markdown, command=command)
        if args.pasero_src:
            encode_ratio = original_median / ours_median
            train_ratio = statistics.median(original_train) / statistics.median(ours_train)
            bars = [
                ("encode 58k lines vs the original Pasero", ">= 4x, identical tokens",
                 f"{encode_ratio:.1f}x by medians, {paired['Encoding']}; {mismatches} lines differ",
                 encode_ratio >= 4 and mismatches == 0),
                ("train 8000 merges vs the original Pasero (2 processes)", ">= 10x, identical merges",
                 f"{train_ratio:.1f}x by medians, {paired['Training']}; identical merges: {identical}",
                 train_ratio >= 10 and identical),
            ]
        else:
            bars = [("tokenizer vs the original Pasero", ">= 4x encode, >= 10x train",
                     "needs --pasero-src (or PASERO_SRC): a naver/pasero source tree", None)]
        record_bars("tokenizer", bars)


if __name__ == "__main__":
    main()
