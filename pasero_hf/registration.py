"""Registration of pasero-hf classes with the `transformers` Auto classes and pipeline registry: the one place.

Each component has its own function; `register_all` runs them once (it is idempotent).
"""

_registered = False


def _register_tokenizers() -> None:
    pass


def _register_pasero() -> None:
    pass


def _register_nllb_moe() -> None:
    pass


def _register_pipelines() -> None:
    pass


def register_all() -> None:
    global _registered
    if _registered:
        return
    _registered = True
    _register_tokenizers()
    _register_pasero()
    _register_nllb_moe()
    _register_pipelines()
