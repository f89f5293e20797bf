"""Internal steps stay quiet: no `datasets` bars for map/filter while corpora are prepared, no transformers
"Writing model shards"/"Loading weights" bars on every checkpoint save and load (the training bar stays)."""

from __future__ import annotations

import contextlib


@contextlib.contextmanager
def datasets_bars_disabled():
    import datasets

    was_enabled = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if was_enabled:
            datasets.enable_progress_bars()


@contextlib.contextmanager
def transformers_bars_disabled():
    from transformers.utils import logging as transformers_logging

    was_enabled = transformers_logging.is_progress_bar_enabled()
    transformers_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            transformers_logging.enable_progress_bar()
