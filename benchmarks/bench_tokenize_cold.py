"""Tokenizing as users run it: one whole process per file, word caches cold (start-up, imports, reading, writing
included), on the bundled Bible train text (en + es) written twice (116k lines).

Systems, each a fresh process per run: `pasero-tokenize` (1 process, and `--threads 2`), the original Pasero
tokenizer (`--pasero-src`/`PASERO_SRC`: its `PaseroTokenizer` class driven by the loop of its `pasero-tokenize`, whose
own module imports torch and `stopes`), and SentencePiece's encoder (a BPE model of 8000 pieces trained here, untimed;
the process loads it, encodes the lines as one batch and writes the pieces). Runs alternate (ours, ours --threads 2,
original, SentencePiece) so that ratios are taken within a round: on a shared machine, wall-clock times drift between
rounds. CPU time (user + system, all processes of a run) is reported too: it is what contention inflates least; so
is the load average before and after, and the `--threads 2` speed-up over one process (it approaches 2x on two idle
cores only). Warm figures (caches filled, in one process) come from bench_tokenizer.py.

    python benchmarks/bench_tokenize_cold.py [--pasero-src DIR] [--rounds 3] [--no-update]
"""

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import markdown_table, median_range, record_bars, update_results  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
BPE_MODEL = REPO / "tests" / "fixtures" / "pasero-models" / "bible-en-es-8k"
BIN = Path(sys.executable).parent

ORIGINAL = """
import sys
sys.path.insert(0, sys.argv[1])
from pasero.tokenizers.pasero_tokenizer import PaseroTokenizer
bpe_model = PaseroTokenizer(sys.argv[2])
with open(sys.argv[3]) as infile, open(sys.argv[4], 'w') as outfile:
    for line in infile:
        outfile.write(' '.join(bpe_model.tokenize(line)) + '\\n')
"""

SENTENCEPIECE = """
import sys
import sentencepiece
processor = sentencepiece.SentencePieceProcessor(model_file=sys.argv[1])
with open(sys.argv[2], encoding='utf-8') as infile:
    lines = infile.read().splitlines()
with open(sys.argv[3], 'w', encoding='utf-8') as outfile:
    for pieces in processor.encode(lines, out_type=str):
        outfile.write(' '.join(pieces) + '\\n')
"""


def timed_run(command: list[str]) -> tuple[float, float]:
    """Wall-clock and CPU seconds (user + system of the process and its children) of one command."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, env={**os.environ, "OMP_NUM_THREADS": "1"})
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pasero-src", default=os.environ.get("PASERO_SRC") or None,
                        help="extracted naver/pasero tree (default: $PASERO_SRC)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-update", action="store_true", help="do not rewrite benchmarks/RESULTS.md")
    args = parser.parse_args()

    from pasero_hf.data.sample_data import bible_en_es_dir

    data = bible_en_es_dir()
    with tempfile.TemporaryDirectory() as workdir:
        work = Path(workdir)
        text = "".join((data / f"train.{lang}").read_text(encoding="utf-8") for lang in ("en", "es"))
        (work / "input.txt").write_text(text * 2, encoding="utf-8")
        lines = (text * 2).count("\n")
        import sentencepiece

        sentencepiece.SentencePieceTrainer.train(
            input=",".join(str(data / f"train.{lang}") for lang in ("en", "es")), model_prefix=str(work / "spm"),
            vocab_size=8000, model_type="bpe", minloglevel=2, num_threads=1,
        )
        bpecodes, source = str(BPE_MODEL / "bpecodes"), str(work / "input.txt")
        systems = {
            "pasero-tokenize": [str(BIN / "pasero-tokenize"), bpecodes, "-i", source, "-o", str(work / "ours.tok")],
            "pasero-tokenize --threads 2": [str(BIN / "pasero-tokenize"), bpecodes, "-i", source, "-o",
                                            str(work / "ours2.tok"), "--threads", "2"],
            "SentencePiece encoder (8000 pieces)": [sys.executable, "-c", SENTENCEPIECE, str(work / "spm.model"),
                                                    source, str(work / "spm.tok")],
        }
        if args.pasero_src:
            systems["original Pasero"] = [sys.executable, "-c", ORIGINAL, args.pasero_src, bpecodes, source,
                                          str(work / "original.tok")]
        runs: dict[str, list[tuple[float, float]]] = {name: [] for name in systems}
        load_before = os.getloadavg()
        for round_index in range(args.rounds):
            for name, command in systems.items():
                runs[name].append(timed_run(command))
            print(f"round {round_index + 1}/{args.rounds} done", file=sys.stderr, flush=True)
        load_after = os.getloadavg()
        ours_lines = (work / "ours.tok").read_text(encoding="utf-8").splitlines()
        same_threads = ours_lines == (work / "ours2.tok").read_text(encoding="utf-8").splitlines()
        differ = None
        if args.pasero_src:
            original_lines = (work / "original.tok").read_text(encoding="utf-8").splitlines()
            differ = sum(a != b for a, b in zip(ours_lines, original_lines)) + abs(len(ours_lines) - len(original_lines))

    def paired(name: str, baseline: str, index: int) -> list[float]:
        return [b[index] / a[index] for a, b in zip(runs[name], runs[baseline])]

    rows = []
    for name, values in runs.items():
        walls, cpus = [v[0] for v in values], [v[1] for v in values]
        rows.append([name, median_range(walls), f"{lines / statistics.median(walls):,.0f}", median_range(cpus),
                     median_range(paired("pasero-tokenize", name, 0)) + "x" if name != "pasero-tokenize" else "",
                     median_range(paired("pasero-tokenize", name, 1)) + "x" if name != "pasero-tokenize" else ""])
    table = markdown_table(["system (whole process, cold)", "wall s median (min-max)", "lines/s (wall)",
                            "CPU s median (min-max)", "pasero-tokenize speed-up, wall (paired)",
                            "pasero-tokenize speed-up, CPU (paired)"], rows)
    threads_wall = paired("pasero-tokenize --threads 2", "pasero-tokenize", 0)  # 1 process / 2 processes
    threads_cpu = paired("pasero-tokenize", "pasero-tokenize --threads 2", 1)  # 2 processes / 1 process
    notes = (
        f"{lines:,} lines (Bible train en + es, twice), {args.rounds} alternating rounds, each run a fresh process "
        f"(OMP_NUM_THREADS=1), {os.cpu_count()} cores, load average (1 min) {load_before[0]:.2f} before, "
        f"{load_after[0]:.2f} after. `--threads 2` output identical and in order: {same_threads}; its speed-up over one "
        f"process (paired): {median_range(threads_wall)}x wall, for {median_range(threads_cpu)}x the CPU time "
        "(the workers pass each other the words they encode; the rest is start-up, inter-process traffic and "
        "contention). "
        + (f"Lines that differ from the original Pasero's: {differ}. " if differ is not None else "")
        + "Warm figures (caches filled, in one process) are in the Tokenizer section."
    )
    print(table + "\n\n" + notes)
    bars = []
    spm = "SentencePiece encoder (8000 pieces)"
    if args.pasero_src:
        ratios = paired("pasero-tokenize", "original Pasero", 0)
        cpu = paired("pasero-tokenize", "original Pasero", 1)
        bars.append(("cold whole-process pasero-tokenize vs the original Pasero (wall, paired)", ">= 4x",
                     f"{statistics.median(ratios):.2f}x ({median_range(ratios)}; CPU {median_range(cpu)}x); "
                     f"{differ} lines differ", statistics.median(ratios) >= 4 and differ == 0))
    for name in ("pasero-tokenize", "pasero-tokenize --threads 2"):
        ratios = paired(name, spm, 0)
        cpu = paired(name, spm, 1)
        bars.append((f"cold whole-process {name} vs SentencePiece's encoder (wall, paired)", ">= 1.0x",
                     f"{statistics.median(ratios):.2f}x ({median_range(ratios)}; CPU {median_range(cpu)}x)",
                     statistics.median(ratios) >= 1.0))
    if not args.no_update:
        update_results("Tokenizer, cold whole process", table + "\n\n" + notes,
                       command="python benchmarks/bench_tokenize_cold.py" + (" --pasero-src DIR" if args.pasero_src
                                                                              else ""))
        record_bars("tokenizer, cold", bars)


if __name__ == "__main__":
    main()
