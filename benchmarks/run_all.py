"""`make bench`: run every benchmark with its default (small) sizes; each rewrites its section of RESULTS.md."""

import subprocess
import sys
from pathlib import Path

BENCHMARKS = [["bench_tokenizer.py"], ["bench_tokenize_cold.py"], ["bench_train.py"], ["bench_decode.py"],
              ["bench_decode.py", "--backends", "--threads", "1", "2"], ["bench_moe.py"], ["bench_serve.py"],
              ["bench_lm.py"]]


def main() -> int:
    here = Path(__file__).resolve().parent
    failed = []
    for name, *args in BENCHMARKS:
        print(f"=== {name} {' '.join(args)}", flush=True)
        if subprocess.run([sys.executable, str(here / name), *args]).returncode != 0:
            failed.append(" ".join([name, *args]))
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
