"""Shared helpers for the benchmarks: timing with warm-up and repetitions, peak memory, machine description,
markdown tables and the sections of benchmarks/RESULTS.md.

Every benchmark runs ours and its baselines in the same process, so ratios are comparable even on a noisy machine.
"""

from __future__ import annotations

import datetime
import json
import multiprocessing
import os
import platform
import queue as queue_module
import re
import resource
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path

RESULTS_PATH = Path(__file__).resolve().parent / "RESULTS.md"
# Each benchmark's latest bar checks, from which the "Bars" section at the top of RESULTS.md is rendered
BARS_PATH = Path(__file__).resolve().parent / "bars.json"


def cpu_model() -> str:
    """The CPU's model name, with its family/model numbers and widest vector extension: virtual machines often
    report a bare "AMD EPYC", which does not tell a Zen 3 from a Zen 5 (and speed ratios differ between them)."""
    fields: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if not line.strip():
                    break  # the first processor's block is enough
                key, _, value = line.partition(":")
                fields[key.strip()] = value.strip()
    except OSError:
        return platform.processor() or "unknown CPU"
    name = fields.get("model name", platform.processor() or "unknown CPU")
    flags = set(fields.get("flags", "").split())
    vector = "AVX-512" if "avx512f" in flags else "AVX2, no AVX-512" if "avx2" in flags else "no AVX2"
    if "cpu family" in fields:
        return f"{name} (family {fields['cpu family']}, model {fields.get('model', '?')}; {vector})"
    return name


def machine_info() -> str:
    """One line describing the machine: CPU model, cores, torch threads, Python and torch versions."""
    parts = [cpu_model(), f"{os.cpu_count()} cores"]
    try:
        import torch

        parts += [f"torch {torch.__version__} ({torch.get_num_threads()} threads)"]
    except ImportError:
        pass
    parts.append(f"Python {platform.python_version()}")
    return ", ".join(parts)


def in_child(target: Callable, *args, on_start: Callable[[], None] | None = None):
    """Run `target(*args, queue)` in a fresh spawned process (not a daemon: it may start processes of its own) and
    return what it put in the queue; a child that dies first is an error, not a hang. `on_start` runs here once the
    child is started."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=target, args=(*args, queue))
    process.start()
    if on_start is not None:
        on_start()
    while True:
        try:
            result = queue.get(timeout=1)
            break
        except queue_module.Empty:
            if not process.is_alive():
                raise RuntimeError(f"{target.__name__} died (exit code {process.exitcode}) before reporting") from None
    process.join()
    return result


class Baton:
    """Turns between processes that must not run at the same time (two trainers timed in lockstep): a process runs
    only while it holds the baton, and hands it on when its turn ends. One named pipe per process, in `directory`;
    `None` makes every call a no-op. Load from other jobs then falls on both alike, step by step."""

    def __init__(self, directory: str | None, mine: str, other: str):
        self.enabled = directory is not None
        if self.enabled:
            # read-write opens never block and never fail on a pipe whose other end is not open yet
            self.mine = os.open(os.path.join(directory, mine), os.O_RDWR)
            self.other = os.open(os.path.join(directory, other), os.O_RDWR)
            Path(directory, f"{mine}.ready").touch()

    @staticmethod
    def create(directory: str, *names: str) -> None:
        for name in names:
            os.mkfifo(os.path.join(directory, name))

    @staticmethod
    def start(directory: str, first: str, *names: str, timeout: float = 600) -> None:
        """Once every named process is ready, hands the first turn to `first`."""
        deadline = time.monotonic() + timeout
        while not all(Path(directory, f"{name}.ready").exists() for name in names):
            if time.monotonic() > deadline:
                raise RuntimeError(f"lockstep: not every process got ready within {timeout:.0f} s")
            time.sleep(0.05)
        descriptor = os.open(os.path.join(directory, first), os.O_RDWR)
        os.write(descriptor, b"x")
        os.close(descriptor)

    def take(self) -> None:
        if self.enabled:
            os.read(self.mine, 1)

    def give(self) -> None:
        if self.enabled:
            os.write(self.other, b"x")


def proc_status_mb(field: str) -> float | None:
    """A memory field of /proc/self/status in MiB (`VmRSS:` now, `VmHWM:` peak), None where there is no /proc."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB.

    Linux's VmHWM, not `ru_maxrss`: a spawned child inherits its parent's `ru_maxrss` (kept across fork and exec), so a
    child started by a large parent would report the parent's peak."""
    peak = proc_status_mb("VmHWM:")
    return peak if peak is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def time_repeats(fn: Callable[[], object], repeats: int = 5, warmup: int = 1) -> list[float]:
    """Wall-clock seconds of `repeats` calls of `fn` after `warmup` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def median_range(values: Sequence[float], fmt: str = "{:.2f}") -> str:
    """`median (min-max)` of `values`, each formatted with `fmt`."""
    return f"{fmt.format(statistics.median(values))} ({fmt.format(min(values))}-{fmt.format(max(values))})"


def summarize(times: Sequence[float]) -> dict[str, float]:
    """Median, min and max of a list of timings."""
    return {"median": statistics.median(times), "min": min(times), "max": max(times)}


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    def cell(value: object) -> str:
        if isinstance(value, float):
            return f"{value:,.2f}" if abs(value) < 1000 else f"{value:,.0f}"
        return str(value)

    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(cell(value) for value in row) + " |" for row in rows]
    return "\n".join(lines)


def update_results(section: str, markdown: str, command: str | None = None, stamp: bool = True) -> None:
    """Replace (or append) the section `section` of RESULTS.md with `markdown`, stamped with date and machine.

    Written to a temporary file then renamed, so an interrupted benchmark never truncates the results.
    """
    begin, end = f"<!-- begin {section} -->", f"<!-- end {section} -->"
    header = f"_{datetime.date.today().isoformat()} — {machine_info()}_\n\n" if stamp else ""
    if command:
        header += f"Command: `{command}`\n\n"
    body = f"{begin}\n## {section}\n\n{header}{markdown.strip()}\n{end}"
    text = RESULTS_PATH.read_text() if RESULTS_PATH.exists() else "# Benchmark results\n"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.DOTALL)
    text = pattern.sub(lambda _: body, text) if pattern.search(text) else text.rstrip() + "\n\n" + body + "\n"
    _write_atomically(RESULTS_PATH, text)


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def record_bars(benchmark: str, bars: Sequence[tuple[str, str, str, bool | None]]) -> None:
    """Replace `benchmark`'s rows of the "Bars" section of RESULTS.md: (bar, target, measured, met) each, where `met`
    None means not measured this run (e.g. a baseline that is not installed)."""
    stored = json.loads(BARS_PATH.read_text()) if BARS_PATH.exists() else {}
    stored[benchmark] = {"date": datetime.date.today().isoformat(), "bars": [list(bar) for bar in bars]}
    _write_atomically(BARS_PATH, json.dumps(stored, indent=1, ensure_ascii=False) + "\n")
    verdict = {True: "met", False: "**NOT met**", None: "not measured"}
    rows = [
        [name, entry["date"], bar, target, measured, verdict[met]]
        for name, entry in stored.items()
        for bar, target, measured, met in entry["bars"]
    ]
    update_results("Bars", markdown_table(["benchmark", "date", "bar", "target", "measured", "verdict"], rows),
                   stamp=False)
