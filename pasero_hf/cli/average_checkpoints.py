"""`pasero-average-checkpoints MODEL_DIR --last N -o OUT`: average the weights of a training run's last N checkpoints
into a model directory (`AutoModelForSeq2SeqLM`, `TextGenerator`, `pasero-decode` load it)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pasero-average-checkpoints", description=__doc__)
    parser.add_argument("model_dir", help="a training run's directory (its checkpoint-STEP subdirectories)")
    parser.add_argument("--last", type=int, default=5, help="number of most recent checkpoints to average (default 5)")
    parser.add_argument("-o", "--output", required=True, help="model directory to write (replaced if it exists)")
    args = parser.parse_args(argv)
    from pasero_hf.training.averaging import average_checkpoints, last_checkpoints

    try:
        names = [p.name for p in last_checkpoints(args.model_dir, args.last)]
        output = average_checkpoints(args.model_dir, args.last, args.output)
    except (ValueError, FileNotFoundError) as error:
        parser.exit(2, f"pasero-average-checkpoints: error: {error}\n")
    print(f"averaged {', '.join(names)} -> {output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
