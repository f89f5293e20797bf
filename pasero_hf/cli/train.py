"""`pasero-train`: the training command of Pasero users, and what `recipes/train_mt.py` runs.

    pasero-train -c CONFIG.yaml -s de -t en [--option value ...]          # one process
    accelerate launch recipes/train_mt.py -c CONFIG.yaml -s de -t en      # the same, on accelerate's processes
    pasero-train -c CONFIG.yaml --dry-run                                 # check configuration and data only
    pasero-train --accelerate-config accelerate_configs/cpu_ddp.yaml -c CONFIG.yaml   # start the processes itself

With `--accelerate-config FILE`, `pasero-train` starts the training processes through `accelerate launch` and
supervises them: Ctrl-C or SIGTERM stops every rank after the same step with one checkpoint, and the command exits
0 once the checkpoint is written (`pasero_hf.cli.launcher`).

Under `accelerate launch` or `torchrun` (WORLD_SIZE is set) `pasero-train` joins the current world. Configuration
and data errors are printed once (by rank 0) and exit with status 2 before anything is written. With
`push_to_hub: USER/NAME`, the main process pushes model_best and its model card to the Hub at the end.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from pasero_hf.data.config_parsing import ConfigError


def add_launch_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    group = parser.add_argument_group("starting the processes (pasero-train only)")
    group.add_argument("--accelerate-config", metavar="FILE",
                       help="start the training processes with `accelerate launch --config_file FILE` and supervise "
                            "them: Ctrl-C/SIGTERM save one checkpoint on every rank and exit 0")
    group.add_argument("--main-process-port", type=int, metavar="PORT",
                       help="with --accelerate-config: the rendezvous port (0: any free port)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    launch, argv = add_launch_arguments(argparse.ArgumentParser(add_help=False, allow_abbrev=False)).parse_known_args(argv)
    if launch.accelerate_config and "WORLD_SIZE" not in os.environ and "--dry-run" not in argv:
        from pasero_hf.cli.launcher import launch_training

        port = [] if launch.main_process_port is None else ["--main_process_port", str(launch.main_process_port)]
        return launch_training(launch.accelerate_config, argv, port)
    from pasero_hf.training.lifecycle import report_error, report_result  # after the launcher: it needs no torch

    try:
        from pasero_hf.training.config import argument_parser, load_training_config

        if "-h" in argv or "--help" in argv:
            add_launch_arguments(argument_parser(prog="pasero-train")).parse_args(["--help"])
        config = load_training_config(argv)
        if config.run.dry_run:
            return dry_run(config)
        from pasero_hf.training.run import train  # runs the same checks before writing anything

        result = train(config)
    except ConfigError as error:
        return report_error(error)
    report_result(result)
    if config.run.push_to_hub and result.is_main_process:
        return push_best_model(config.run.push_to_hub, result)
    return 0


def dry_run(config) -> int:
    """`--dry-run`: the task's inputs checked (corpora, manifests and audio files, or the causal LM and its
    prompts), the report printed by rank 0; nothing is written."""
    if config.run.task == "st":
        from pasero_hf.training.speech import speech_dry_run_report as report
    elif config.run.task in ("lm", "dialogue"):
        from pasero_hf.training.lm import dry_run_report as report
    else:
        from pasero_hf.training.preflight import check_inputs, dry_run_report

        def report(config):
            return dry_run_report(config, check_inputs(config))
    from pasero_hf.training.lifecycle import rank_from_env

    text = report(config)
    if rank_from_env() == 0:
        print(text)
    return 0


def push_best_model(repo_id: str, result) -> int:
    """`push_to_hub: REPO_ID`: push model_best with its card. The command pushes, not `train()`: sharing
    (pasero_hf.hub) is a layer above training, which must not import it."""
    from pasero_hf.hub.cards import describe_hardware
    from pasero_hf.hub.push import PushError, push_to_hub

    if result.best_dir is None:
        print(f"error: push_to_hub: no model_best in {result.model_dir} (no validation ran)", file=sys.stderr)
        return 1
    try:
        info = push_to_hub(result.best_dir, repo_id, exist_ok=True, hardware=describe_hardware(),
                           commit_message=f"Upload model_best (step {result.global_step}) with pasero-hf")
    except PushError as error:
        print(f"error: push_to_hub: {error}", file=sys.stderr)
        return 1
    print(f"pushed: {info.commit_url}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
