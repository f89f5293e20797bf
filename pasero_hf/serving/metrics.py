"""Prometheus metrics of the server (`GET /metrics`, text exposition format 0.0.4), kept without a dependency."""

from __future__ import annotations

import threading
from collections import defaultdict


def _labels(names: tuple[str, ...], values: tuple[str, ...], extra: str = "") -> str:
    pairs = [f'{name}="{value}"' for name, value in zip(names, values)]
    if extra:
        pairs.append(extra)
    return "{" + ",".join(pairs) + "}" if pairs else ""


class _Metric:
    kind = ""

    def __init__(self, name: str, help_text: str, labels: tuple[str, ...]):
        self.name, self.help, self.label_names = name, help_text, labels
        self._lock = threading.Lock()

    def header(self) -> list[str]:
        return [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} {self.kind}"]


class Counter(_Metric):
    kind = "counter"

    def __init__(self, *args):
        super().__init__(*args)
        self.values: dict[tuple[str, ...], float] = defaultdict(float)

    def inc(self, *labels: str, value: float = 1) -> None:
        with self._lock:
            self.values[labels] += value

    def render(self) -> list[str]:
        with self._lock:
            items = sorted(self.values.items())
        return self.header() + [f"{self.name}{_labels(self.label_names, k)} {v:g}" for k, v in items]


class Gauge(Counter):
    kind = "gauge"

    def dec(self, *labels: str, value: float = 1) -> None:
        self.inc(*labels, value=-value)


class Histogram(_Metric):
    kind = "histogram"

    def __init__(self, name, help_text, labels, buckets: tuple[float, ...]):
        super().__init__(name, help_text, labels)
        self.buckets = buckets
        self.counts: dict[tuple[str, ...], list[int]] = {}
        self.sums: dict[tuple[str, ...], float] = defaultdict(float)

    def observe(self, *labels_and_value) -> None:
        *labels, value = labels_and_value
        key = tuple(labels)
        with self._lock:
            counts = self.counts.setdefault(key, [0] * (len(self.buckets) + 1))
            for index, bound in enumerate(self.buckets):
                if value <= bound:
                    counts[index] += 1
            counts[-1] += 1
            self.sums[key] += value

    def render(self) -> list[str]:
        lines = self.header()
        with self._lock:
            for key, counts in sorted(self.counts.items()):
                bounds = [f"{bound:g}" for bound in self.buckets] + ["+Inf"]
                for bound, count in zip(bounds, counts):
                    le = 'le="' + bound + '"'
                    lines.append(f"{self.name}_bucket{_labels(self.label_names, key, le)} {count}")
                lines.append(f"{self.name}_sum{_labels(self.label_names, key)} {self.sums[key]:g}")
                lines.append(f"{self.name}_count{_labels(self.label_names, key)} {counts[-1]}")
        return lines


class Metrics:
    """Every metric the server exports; names follow TGI's where TGI has one (`tgi_` prefix there, `pasero_` here)."""

    def __init__(self):
        self.requests = Counter("pasero_request_count", "HTTP requests by route and status", ("route", "status"))
        self.cancelled = Counter("pasero_request_cancelled", "requests dropped because their client went away",
                                 ("model",))
        self.queue_size = Gauge("pasero_queue_size", "requests waiting to be decoded", ("model",))
        self.batch_size = Histogram("pasero_batch_inputs", "inputs per decoding batch", ("model",),
                                    (1, 2, 4, 8, 16, 32, 64, 128))
        self.duration = Histogram("pasero_request_duration_seconds", "request latency", ("route",),
                                  (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))
        self.generated_tokens = Counter("pasero_generated_tokens", "tokens generated", ("model",))
        self.input_tokens = Counter("pasero_input_tokens", "input tokens received", ("model",))
        self.overloaded = Counter("pasero_request_overloaded", "requests refused with 429", ())

    def render(self) -> str:
        metrics = (self.requests, self.cancelled, self.queue_size, self.batch_size, self.duration,
                   self.generated_tokens, self.input_tokens, self.overloaded)
        return "\n".join(line for metric in metrics for line in metric.render()) + "\n"
