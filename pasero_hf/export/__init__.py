"""Exports of our models to inference engines (`pasero-export`). Layer: above models, below generation."""

from pasero_hf.export.ctranslate2 import (
    QUANTIZATIONS,
    ExportError,
    export_ctranslate2,
    is_ctranslate2_export,
)

__all__ = ["QUANTIZATIONS", "ExportError", "export_ctranslate2", "is_ctranslate2_export"]
