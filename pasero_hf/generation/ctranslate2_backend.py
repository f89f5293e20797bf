"""CTranslate2 as a decoding backend of `TextGenerator`: same options, hypotheses and output format as the PyTorch
path, on a directory written by `pasero-export --format ctranslate2` (or exported on the fly into a cache).

```python
generator = TextGenerator.from_pretrained("models/tiny-en-es-ct2")                         # an export
generator = TextGenerator.from_pretrained("models/tiny-en-es", backend="ctranslate2")       # exported and cached
```

What differs from the PyTorch path, by design of the engine:
- beam search is CTranslate2's: finished hypotheses are ranked by `-score / len(tokens) ** len_penalty` (the end
  token counted) where Pasero divides by `(len(tokens) + 1) ** len_penalty`, and its stopping rule differs, so some
  beam outputs differ (counted in benchmarks/RESULTS.md); greedy search gives the same outputs. `normalized_score`
  is still Pasero's formula, so an n-best list is in CTranslate2's order, not always in `normalized_score` order.
- scores: with `return_scores`, per-token scores come from CTranslate2's teacher-forced scoring of each hypothesis;
  without it, beam search and sampling give `score`/`normalized_score` from the search, greedy search none (as
  Pasero's greedy search).
- sampling with a `seed` reloads the translator for each batch (CTranslate2 seeds a worker thread's generator only
  once), so each batch samples from the seed.
- `return_layers`: only the last decoder layer's cross-attention, averaged over heads (one "head": shape
  (hyp_len, 1, src_len)), which the verbose `A-` lines use; other layers need the PyTorch backend.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from pasero_hf.export.ctranslate2 import (
    export_ctranslate2,
    import_ctranslate2,
    is_ctranslate2_export,
    read_export_info,
)

logger = logging.getLogger(__name__)

BACKENDS = ("pytorch", "ctranslate2")
# Exports made on the fly (`backend="ctranslate2"` on a PyTorch directory) are kept here, one per model version.
CACHE_ENV = "PASERO_HF_CACHE"


class ExportedModel(nn.Module):
    """What TextGenerator reads from its model (configuration, generation config, device) for an exported model,
    which has no PyTorch weights: decoding goes through the backend."""

    def __init__(self, config, generation_config):
        super().__init__()
        self.config = config
        self.generation_config = generation_config

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    def forward(self, input_ids=None):
        raise RuntimeError("an exported model has no PyTorch forward: decode it through its TextGenerator backend")

    def set_attn_implementation(self, implementation: str) -> None:
        pass  # the engine's attention is its own


def cached_export(model_dir: Path) -> Path:
    """The float32 CTranslate2 export of a PyTorch model directory, made once per version of its files."""
    ctranslate2 = import_ctranslate2()
    digest = hashlib.sha256(f"{model_dir.resolve()}|{ctranslate2.__version__}".encode())
    for path in sorted(model_dir.iterdir()):
        if path.is_file():
            stat = path.stat()
            digest.update(f"|{path.name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    root = Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "pasero_hf") / "ctranslate2"
    output = root / f"{model_dir.resolve().name}-{digest.hexdigest()[:16]}"
    if not is_ctranslate2_export(output):
        logger.info("exporting %s to CTranslate2 in %s", model_dir, output)
        export_ctranslate2(model_dir, output, overwrite=True)
    return output


class CTranslate2Backend:
    """Decodes token ids with a `ctranslate2.Translator`; `TextGenerator` calls `decode_batch` for each batch."""

    name = "ctranslate2"

    def __init__(self, export_dir: str | os.PathLike, *, device: str | None = None, compute_type: str | None = None,
                 threads: int | None = None):
        from transformers import AutoConfig, GenerationConfig

        from pasero_hf.registration import register_all

        register_all()  # our model types in AutoConfig

        ctranslate2 = import_ctranslate2()
        self.export_dir = Path(export_dir)
        self.info = read_export_info(self.export_dir)
        model_config = dict(self.info["model_config"])
        self.config = AutoConfig.for_model(model_config.pop("model_type"), **model_config)
        generation_path = self.export_dir / "generation_config.json"
        generation_config = (
            GenerationConfig.from_pretrained(self.export_dir) if generation_path.is_file() else GenerationConfig()
        )
        self.model = ExportedModel(self.config, generation_config)
        self._ctranslate2 = ctranslate2
        self._translator_kwargs = dict(
            device=str(device or "cpu").split(":")[0], compute_type=compute_type or "default",
            intra_threads=threads if threads is not None else torch.get_num_threads(), inter_threads=1,
        )
        self.translator = ctranslate2.Translator(str(self.export_dir), **self._translator_kwargs)
        self.source_vocab, self.target_vocab = self._vocabularies()
        self.target_ids = {token: index for index, token in enumerate(self.target_vocab)}
        self.num_decoder_layers = self.config.get_text_config().decoder_layers
        eos = self.config.eos_token_id
        self.eos_id = eos[0] if isinstance(eos, list) else eos

    @classmethod
    def load(cls, model_dir: str | os.PathLike, **kwargs) -> CTranslate2Backend:
        """An export as it is, or a PyTorch model directory exported on the fly into the cache."""
        model_dir = Path(model_dir)
        return cls(model_dir if is_ctranslate2_export(model_dir) else cached_export(model_dir), **kwargs)

    def _vocabularies(self) -> tuple[list[str], list[str]]:
        def read(name: str) -> list[str] | None:
            path = self.export_dir / name
            return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None

        shared = read("shared_vocabulary.json")
        if shared is not None:
            return shared, shared
        source, target = read("source_vocabulary.json"), read("target_vocabulary.json")
        if source is None or target is None:
            raise FileNotFoundError(f"{self.export_dir}: no CTranslate2 vocabulary files (shared_vocabulary.json)")
        return source, target

    # ----------------------------------------------------------------------------------------------------------------

    def check_layers(self, names) -> None:
        """Only the last decoder layer's cross-attention (averaged over heads) comes out of the engine."""
        available = f"dec_{self.num_decoder_layers - 1}_cross_attn"
        others = [name for name in names if name != available]
        if others:
            raise ValueError(
                f"return_layers {others} are not available with the CTranslate2 backend (it returns only "
                f"{available}, averaged over heads): decode with the PyTorch backend (backend='pytorch', or the "
                "model directory before export) to get layer outputs"
            )

    def decode_batch(self, sources, targets, prompt, decoding, return_scores: bool, attention: bool):
        """Per sentence, its n-best list of (token ids without the prompt, pos_scores or None, score or None,
        cross-attention (hyp_len, 1, src_len) or None)."""
        source_tokens = [[self.source_vocab[index] for index in ids] for ids in sources]
        prefix = [self.target_vocab[index] for index in prompt[1:]]
        if targets is not None:
            hyp_ids = [[list(target)] for target in targets]
            attentions = [[None] for _ in targets]
            totals = [[None] for _ in targets]
            return self._with_scores(source_tokens, prefix, hyp_ids, totals, attentions)
        if decoding.max_output_len == 0:
            return [[([], [] if return_scores else None, None, None)] for _ in sources]

        sampling = decoding.sampling
        greedy = not sampling and decoding.beam_size == 1
        copies = decoding.n_best if sampling else 1  # independent samples: one row each
        rows = [tokens for tokens in source_tokens for _ in range(copies)]
        if sampling and decoding.seed is not None:
            # CTranslate2 seeds each worker thread's generator once, when the thread first samples: a fresh
            # translator is the only way to restart from the seed (each such batch samples from the seed)
            self._ctranslate2.set_random_seed(decoding.seed)
            self.translator = self._ctranslate2.Translator(str(self.export_dir), **self._translator_kwargs)
        results = self.translator.translate_batch(
            rows,
            target_prefix=[prefix] * len(rows) if prefix else None,
            beam_size=1 if sampling else decoding.beam_size,
            num_hypotheses=1 if sampling else decoding.n_best,
            length_penalty=decoding.len_penalty,
            # our max_output_len counts generated tokens, the end token included, the forced prefix excluded
            max_decoding_length=decoding.max_output_len + len(prefix),
            min_decoding_length=0,
            max_input_length=0,
            return_end_token=True,
            return_scores=not greedy,  # greedy search then skips the log-softmax, as Pasero's
            return_attention=attention,
            sampling_topk=(decoding.sampling_topk or 0) if sampling else 1,
            sampling_topp=decoding.sampling_topp if sampling else 1.0,
            sampling_temperature=decoding.temperature if sampling else 1.0,
            repetition_penalty=float(decoding.repeat_penalty),  # CTranslate2's own implementation of the penalty
        )
        hyp_ids, totals, attentions = [], [], []
        for sentence in range(len(sources)):
            ids_list, total_list, attention_list = [], [], []
            for result in results[sentence * copies:(sentence + 1) * copies]:
                none = [None] * len(result.hypotheses)
                for tokens, score, weights in zip(result.hypotheses, result.scores or none, result.attention or none):
                    ids = [self.target_ids[token] for token in tokens[len(prefix):]]
                    ids_list.append(ids)
                    # CTranslate2's score: log-prob / (generated tokens, end token included) ** len_penalty
                    total_list.append(None if greedy or prefix else -score * len(ids) ** decoding.len_penalty)
                    attention_list.append(
                        np.asarray(weights, dtype=np.float32)[len(prefix):, None, :] if weights is not None else None
                    )
            hyp_ids.append(ids_list)
            totals.append(total_list)
            attentions.append(attention_list)
        if return_scores or (prefix and not greedy):
            return self._with_scores(source_tokens, prefix, hyp_ids, totals, attentions, keep_pos=return_scores)
        return [
            [(ids, None, total, weights) for ids, total, weights in zip(*columns)]
            for columns in zip(hyp_ids, totals, attentions)
        ]

    def _with_scores(self, source_tokens, prefix, hyp_ids, totals, attentions, keep_pos: bool = True):
        """Per-token scores of the hypotheses by teacher forcing (CTranslate2's `score_batch`)."""
        eos = self.eos_id
        rows, targets = [], []
        for sentence, nbest in enumerate(hyp_ids):
            for ids in nbest:
                body = ids[:-1] if ids and ids[-1] == eos else ids
                rows.append(source_tokens[sentence])
                targets.append(prefix + [self.target_vocab[index] for index in body])
        scored = iter(self.translator.score_batch(rows, targets, max_input_length=0, offset=len(prefix)))
        output = []
        for sentence, nbest in enumerate(hyp_ids):
            entries = []
            for ids, _, weights in zip(nbest, totals[sentence], attentions[sentence]):
                log_probs = next(scored).log_probs
                # the end token's log-prob comes last; hypotheses cut by max_output_len have no end token
                pos_scores = [-value for value in log_probs[: len(ids)]]
                entries.append((ids, pos_scores if keep_pos else None, float(sum(pos_scores)), weights))
            output.append(entries)
        return output


def load_backend(name: str | None, model_dir: Path, *, device=None, dtype=None, quantization: str | None = None):
    """The backend object for `TextGenerator.from_pretrained(backend=...)`: None for PyTorch (the model decodes
    itself), a `CTranslate2Backend` for 'ctranslate2' or for a directory that is a CTranslate2 export."""
    if name not in (None, *BACKENDS):
        raise ValueError(f"unknown backend {name!r}: expected one of {', '.join(BACKENDS)}")
    exported = is_ctranslate2_export(model_dir)
    if name == "pytorch" and exported:
        raise ValueError(
            f"{model_dir} is a CTranslate2 export: it decodes only with backend='ctranslate2' (the default for it)"
        )
    if name == "ctranslate2" or exported:
        compute_type = quantization or (str(dtype).replace("torch.", "") if dtype is not None else None)
        return CTranslate2Backend.load(model_dir, device=device, compute_type=compute_type)
    if quantization is not None:
        raise ValueError("quantization applies to the CTranslate2 backend (backend='ctranslate2')")
    return None


__all__ = ["BACKENDS", "CTranslate2Backend", "ExportedModel", "cached_export", "load_backend"]
