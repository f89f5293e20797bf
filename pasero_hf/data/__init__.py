"""Multilingual training data for pasero-hf: corpus definitions, cached tokenization, temperature sampling,
token-based batching, resumable per-rank streams, and validation sets.

Recipe for the trainer (Hugging Face `Trainer`/`Seq2SeqTrainer`)::

    from pasero_hf.data import DataConfig, build_train_dataset, build_valid_datasets

    config = DataConfig.from_dict(yaml_options)          # or the `data` section of the training config
    with args.main_process_first(local=False):           # rank 0 tokenizes, the other ranks read its cache
        stream = build_train_dataset(config, tokenizer, model.config.decoder_start_token_id,
                                     rank=args.process_index, world_size=args.world_size,
                                     cache_dir=f"{model_dir}/data_cache")
        valid_sets = build_valid_datasets(config, tokenizer, model.config.decoder_start_token_id)

The stream yields ready batches and already splits the data between ranks: the Trainer must neither batch it
again nor shard it through Accelerate. Override `get_train_dataloader` to return
``DataLoader(stream, batch_size=None, num_workers=N)`` without `accelerator.prepare` (`Trainer._prepare_inputs`
still moves the tensors to the device; the strings source_lang/target_lang/domain pass through), and train with
`max_steps` (the stream is endless). In checkpoints save ``stream.state_dict(steps=global_step * grad_accum)``
(JSON-serialisable, the same on every rank) and call ``stream.load_state_dict(state)`` before resuming.
Validation: ``valid_sets[corpus_id]`` is a `ValidSet` (batches, the corpus indices of each batch's rows, raw
sources and references); ``valid_set.shard(rank, world_size)`` splits its batches between ranks.

Every error about the data (missing file, misaligned or empty corpus, undefined language pair, invalid UTF-8)
is raised by these builders, before the first training step.
"""

import importlib

# Names load on first access: the inference side imports `pasero_hf.data.batching` alone, without `datasets`.
_EXPORTS = {
    "CorpusSpec": "config", "DataConfig": "config",
    "ConfigError": "config_parsing", "dataclass_from_dict": "config_parsing",
    "Corpus": "corpora", "expand_corpora": "corpora",
    "TrainStream": "train_stream", "build_train_dataset": "train_stream", "data_loader_throughput": "train_stream",
    "ValidSet": "valid", "build_valid_datasets": "valid",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
