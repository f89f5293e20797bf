"""`pasero-train`: the training command of Pasero users, and what `recipes/train_mt.py` runs.

    pasero-train -c CONFIG.yaml -s de -t en [--option value ...]          # one process
    accelerate launch recipes/train_mt.py -c CONFIG.yaml -s de -t en      # the same, on accelerate's processes
    pasero-train -c CONFIG.yaml --dry-run                                 # check configuration and data only

Under `accelerate launch` or `torchrun` (WORLD_SIZE is set) `pasero-train` joins the current world. Configuration
and data errors are printed once (by rank 0) and exit with status 2 before anything is written.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from pasero_hf.data.config_parsing import ConfigError


def _rank() -> int:
    return int(os.environ.get("RANK", "0"))


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        from pasero_hf.training.config import argument_parser, load_training_config

        if "-h" in argv or "--help" in argv:
            argument_parser(prog="pasero-train").parse_args(["--help"])
        config = load_training_config(argv)
        if config.run.dry_run:
            from pasero_hf.training.preflight import check_inputs, dry_run_report

            rows = check_inputs(config)
            if _rank() == 0:
                print(dry_run_report(config, rows))
            return 0
        from pasero_hf.training.run import train  # runs the same checks before writing anything

        result = train(config)
    except ConfigError as error:
        if _rank() == 0:
            print(f"error: {error}", file=sys.stderr)
        return 2
    if _rank() == 0:
        print(f"best model: {result.best_dir}\nlast model: {result.last_dir}\nsteps: {result.global_step}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
