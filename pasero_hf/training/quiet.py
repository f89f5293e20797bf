"""Internal steps stay quiet: no `datasets` bars for map/filter while corpora are prepared, no transformers
"Writing model shards"/"Loading weights" bars on every checkpoint save and load (the training bar stays)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable


@contextlib.contextmanager
def _bars_disabled(is_enabled: Callable[[], bool], disable: Callable[[], None], enable: Callable[[], None]):
    """Progress bars off inside the block, and back on after it only if they were on before."""
    was_enabled = is_enabled()
    disable()
    try:
        yield
    finally:
        if was_enabled:
            enable()


def datasets_bars_disabled():
    import datasets

    return _bars_disabled(datasets.is_progress_bar_enabled, datasets.disable_progress_bars,
                          datasets.enable_progress_bars)


def transformers_bars_disabled():
    from transformers.utils import logging as transformers_logging

    return _bars_disabled(transformers_logging.is_progress_bar_enabled, transformers_logging.disable_progress_bar,
                          transformers_logging.enable_progress_bar)
