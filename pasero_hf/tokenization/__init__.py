"""Pasero's inline-casing BPE tokenizer: apply (`PaseroBPE`), train (`train_bpe`), dictionaries, and the
`transformers` tokenizer `PaseroTokenizer`.

Importing this package does not import torch or transformers; `PaseroTokenizer` is loaded on first access.
"""

from .bpe import BPEOptions, PaseroBPE, read_bpecodes
from .bpe_training import TrainingResult, train_bpe
from .dictionary import (
    CoverageReport,
    Dictionary,
    build_dictionary,
    check_vocabulary_coverage,
    lang_code,
    load_vocabulary,
)
from .inline_casing import detokenize

__all__ = [
    "BPEOptions",
    "CoverageReport",
    "Dictionary",
    "PaseroBPE",
    "PaseroTokenizer",
    "TrainingResult",
    "build_dictionary",
    "check_vocabulary_coverage",
    "detokenize",
    "lang_code",
    "load_vocabulary",
    "read_bpecodes",
    "train_bpe",
]


def __getattr__(name: str):
    if name == "PaseroTokenizer":
        from .tokenization_pasero import PaseroTokenizer

        return PaseroTokenizer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
