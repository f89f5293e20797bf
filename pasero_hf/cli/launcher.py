"""`pasero-train --accelerate-config FILE ...`: start the training processes with `accelerate launch`, and stop them
the way Pasero's `pasero-train` stops.

Plain `accelerate launch` handles Ctrl-C badly for a training run: the terminal's SIGINT reaches the launcher as
well as the workers, and the launcher dies with a `KeyboardInterrupt` traceback (one process) or exit status 1 (torch
elastic, several processes) while the workers are still writing their checkpoint, so the shell prompt comes back
before the save ends. Here accelerate's launcher runs in its own session, out of the terminal's reach; this process
catches SIGINT/SIGTERM and hands them to the training processes only, which finish their step, save one checkpoint
with every rank at the same step, and exit 0. The launcher then ends normally and so does this command.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import psutil

FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def threads_per_process(config_file: Path) -> int:
    """What `--num_cpu_threads_per_process` gets: OMP_NUM_THREADS when set, else the physical cores shared by the
    processes of this machine (accelerate's own rule, passed explicitly so that it prints no warning about values
    that were not passed)."""
    if os.environ.get("OMP_NUM_THREADS"):
        return int(os.environ["OMP_NUM_THREADS"])
    import yaml

    with open(config_file, encoding="utf-8") as handle:
        settings = yaml.safe_load(handle) or {}
    processes = int(settings.get("num_processes") or 1)
    machines = int(settings.get("num_machines") or 1)
    cores = psutil.cpu_count(logical=False) or os.cpu_count() or 1
    return max(cores // max(processes // machines, 1), 1)


def accelerate_command(config_file: Path, module: str, args: Sequence[str],
                       launcher_args: Sequence[str] = ()) -> list[str]:
    return [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(config_file),
            "--num_cpu_threads_per_process", str(threads_per_process(config_file)), *launcher_args,
            "-m", module, *args]


def _workers(launcher: psutil.Process) -> list[psutil.Process]:
    """Every process under accelerate's launcher: the training processes (and their data-loader workers)."""
    try:
        return launcher.children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def run_supervised(command: Sequence[str]) -> int:
    """Run `command` (accelerate's launcher) in its own session and forward stop signals to its workers only.

    Returns the launcher's exit status, or 128 + the signal number when a signal arrived before any worker started
    (nothing to save yet: the launcher's session is terminated)."""
    process = subprocess.Popen(list(command), start_new_session=True)
    launcher = psutil.Process(process.pid)
    stopped_early: list[int] = []

    def forward(signum, _frame):
        workers = _workers(launcher)
        if not workers:
            stopped_early.append(signum)
            os.killpg(process.pid, signal.SIGTERM)
            return
        for worker in workers:
            try:
                worker.send_signal(signum)
            except psutil.NoSuchProcess:
                pass

    previous = {signum: signal.signal(signum, forward) for signum in FORWARDED_SIGNALS}
    try:
        returncode = process.wait()  # a handled signal does not interrupt the wait (PEP 475)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if stopped_early:
        return 128 + stopped_early[0]
    return returncode if returncode >= 0 else 128 - returncode


def launch_training(config_file: str, args: Sequence[str], launcher_args: Sequence[str] = ()) -> int:
    path = Path(config_file)
    if not path.is_file():
        print(f"error: --accelerate-config: no such file: {config_file}", file=sys.stderr)
        return 2
    return run_supervised(accelerate_command(path, "pasero_hf.cli.train", args, launcher_args))
