"""Shared helpers for the benchmarks: timing with warm-up and repetitions, peak memory, machine description,
markdown tables and the sections of benchmarks/RESULTS.md.

Every benchmark runs ours and its baselines in the same process, so ratios are comparable even on a noisy machine.
"""

from __future__ import annotations

import datetime
import os
import platform
import re
import resource
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path

RESULTS_PATH = Path(__file__).resolve().parent / "RESULTS.md"


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


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


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


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


def update_results(section: str, markdown: str, command: str | None = None) -> None:
    """Replace (or append) the section `section` of RESULTS.md with `markdown`, stamped with date and machine.

    Written to a temporary file then renamed, so an interrupted benchmark never truncates the results.
    """
    begin, end = f"<!-- begin {section} -->", f"<!-- end {section} -->"
    stamp = f"_{datetime.date.today().isoformat()} — {machine_info()}_"
    if command:
        stamp += f"\n\nCommand: `{command}`"
    body = f"{begin}\n## {section}\n\n{stamp}\n\n{markdown.strip()}\n{end}"
    text = RESULTS_PATH.read_text() if RESULTS_PATH.exists() else "# Benchmark results\n"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.DOTALL)
    text = pattern.sub(lambda _: body, text) if pattern.search(text) else text.rstrip() + "\n\n" + body + "\n"
    tmp = RESULTS_PATH.with_suffix(".md.tmp")
    tmp.write_text(text)
    os.replace(tmp, RESULTS_PATH)
