"""Speech translation and transcription training (`task: st`): a Whisper checkpoint fine-tuned on audio manifests
with the MT trainer (`PaseroSeq2SeqTrainer`: loss, schedule, checkpoints, exact resume, SIGINT/SIGTERM, validation).

Each utterance becomes mel features (padded to the model's window) and the decoder sequence
`<|startoftranscript|> <|SPOKEN|> <|translate|or|transcribe|> <|notimestamps|> TEXT <|endoftext|>`; as in Pasero,
the loss ignores the prompt tokens (the task is given, not predicted). Validation scores translations with the
run's `metrics` (BLEU/chrF) and transcripts with WER. The steps, each one call (what `recipes/train_st.py` shows):

    processor = load_processor(config)                 # feature extractor + tokenizer of `model`
    data = build_speech_data(config, processor, rank, world_size)  # manifests read, every audio file checked
    run = start_run(config)                            # training arguments, MODEL_DIR, logging, resume point
    model = load_speech_model(config, processor)
    lifecycle.reset_optimizer(config, model, run)
    trainer = build_speech_trainer(config, processor, data, model, run)
    result = finish_training(config, trainer, trainer.stop_callback, run.resume)  # (lifecycle: train, save)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pasero_hf.data.audio import (
    AudioError,
    Utterance,
    check_utterances,
    features_dataset,
    read_audio_dataset,
    read_manifest,
)
from pasero_hf.data.config_parsing import ConfigError
from pasero_hf.metrics import LOWER_IS_BETTER
from pasero_hf.models.locate import resolve_model_dir
from pasero_hf.models.whisper import END, NO_TIMESTAMPS, START, fill_generation_config, language_token
from pasero_hf.training import checkpoints, lifecycle
from pasero_hf.training.config import TrainingConfig, write_yaml_atomically
from pasero_hf.training.loss import IGNORE_INDEX
from pasero_hf.training.trainer import PaseroSeq2SeqTrainer, trainable_parameter_count

logger = logging.getLogger("pasero_hf.training")

STATE_VERSION = 1
FEATURE_CACHE_BYTES = 512 * 2**20


@dataclass
class SpeechCorpus:
    """A validation set's languages and task (the `corpus` a `ValidSet` carries)."""

    name: str
    source_lang: str | None
    target_lang: str | None
    task: str
    domain: str | None = None

    @property
    def corpus_id(self) -> str:
        return self.name


class SpeechBatches:
    """Turns utterances into model batches: features (through `datasets`) and decoder inputs/labels."""

    def __init__(self, utterances: list[Utterance], processor, max_target_len: int):
        self.utterances = utterances
        self.features = features_dataset(utterances, processor.feature_extractor)
        self._cache: dict[int, np.ndarray] = {}
        extractor = processor.feature_extractor
        self._cacheable = extractor.feature_size * extractor.nb_max_frames * 4 * len(utterances) <= FEATURE_CACHE_BYTES
        tokenizer = processor.tokenizer
        vocab = tokenizer.get_vocab()
        self.pad_id = vocab[END]
        self.targets = []
        for utterance in utterances:
            lang = language_token(utterance.source_lang or "")
            if lang not in vocab:
                raise AudioError(f"{utterance.where}: language {utterance.source_lang!r}: the tokenizer has no {lang} "
                                 "token (Whisper language codes: en, fr, es, de...)")
            if not utterance.text or not utterance.text.strip():
                raise AudioError(f"{utterance.where}: no text for {utterance.audio}")
            prompt = [vocab[START], vocab[lang], vocab[f"<|{utterance.task}|>"], vocab[NO_TIMESTAMPS]]
            ids = tokenizer(utterance.text.strip(), add_special_tokens=False)["input_ids"]
            ids = (ids + [self.pad_id])[: max_target_len - len(prompt) + 1]
            self.targets.append((prompt, ids))

    def _features(self, indices: list[int]) -> np.ndarray:
        if not self._cacheable:
            return np.asarray(self.features[indices]["input_features"], dtype=np.float32)
        # a corpus whose features fit in FEATURE_CACHE_BYTES keeps them after the first epoch (no re-decoding)
        missing = [i for i in indices if i not in self._cache]
        if missing:
            self._cache.update(zip(missing, np.asarray(self.features[missing]["input_features"], dtype=np.float32)))
        return np.stack([self._cache[i] for i in indices])

    def batch(self, indices: list[int]) -> dict[str, torch.Tensor]:
        features = torch.from_numpy(self._features(indices))
        length = max(len(self.targets[i][0]) + len(self.targets[i][1]) - 1 for i in indices)
        decoder_input_ids = torch.full((len(indices), length), self.pad_id, dtype=torch.long)
        labels = torch.full((len(indices), length), IGNORE_INDEX, dtype=torch.long)
        for row, index in enumerate(indices):
            prompt, ids = self.targets[index]
            inputs = prompt + ids[:-1]
            decoder_input_ids[row, : len(inputs)] = torch.tensor(inputs)
            labels[row, len(prompt) - 1: len(inputs)] = torch.tensor(ids)  # prompt tokens: no loss
        return {"input_features": features, "decoder_input_ids": decoder_input_ids, "labels": labels}


class SpeechTrainStream(torch.utils.data.IterableDataset):
    """Endless batches of `utterances_per_batch` utterances for one rank: each epoch a new permutation drawn from the
    seed, every world_size-th batch per rank. Its position is saved in checkpoints, so a resumed run sees the batches
    an uninterrupted one would."""

    def __init__(self, batches: SpeechBatches, batch_size: int, seed: int, rank: int = 0, world_size: int = 1):
        self.batches, self.batch_size, self.seed = batches, batch_size, seed
        self.rank, self.world_size = rank, world_size
        self.steps = 0
        size = len(batches.utterances)
        self.batches_per_epoch = max(size // batch_size, 1)  # the last incomplete batch is dropped each epoch

    def _global_batch(self, position: int) -> list[int]:
        epoch, offset = divmod(position, self.batches_per_epoch)
        order = np.random.default_rng([self.seed, epoch]).permutation(len(self.batches.utterances))
        return order[offset * self.batch_size:(offset + 1) * self.batch_size].tolist()

    def __iter__(self):
        while True:
            position = self.steps * self.world_size + self.rank
            self.steps += 1
            yield self.batches.batch(self._global_batch(position))

    def state_dict(self, steps: int | None = None) -> dict[str, Any]:
        return {"version": STATE_VERSION, "steps": self.steps if steps is None else steps, "seed": self.seed,
                "world_size": self.world_size, "utterances": len(self.batches.utterances)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key, mine in (("version", STATE_VERSION), ("seed", self.seed), ("world_size", self.world_size),
                          ("utterances", len(self.batches.utterances))):
            if state.get(key) != mine:
                raise ValueError(f"data stream state: {key} is {state.get(key)!r}, this stream has {mine!r}")
        self.steps = int(state["steps"])


@dataclass
class SpeechValidSet:
    """One validation set (one manifest, one spoken language and task), shaped like `pasero_hf.data.ValidSet`:
    `sources` are the utterances, `references` their texts."""

    corpus: SpeechCorpus
    batches: list[dict]
    sources: list[Utterance]
    references: list[str]
    metrics: list[str]

    def shard(self, rank: int, world_size: int) -> SpeechValidSet:
        return SpeechValidSet(self.corpus, self.batches[rank::world_size], self.sources, self.references,
                              self.metrics)


@dataclass
class SpeechData:
    train: SpeechTrainStream
    valid: dict[str, SpeechValidSet]
    lang_pairs: list[tuple[str, str]]


class SpeechSeq2SeqTrainer(PaseroSeq2SeqTrainer):
    """`PaseroSeq2SeqTrainer` whose validation decodes audio (`pasero_hf.generation.audio_inputs`) and scores each
    set with its own metrics (WER for transcripts); `processing_class` is the Whisper processor, saved with every
    checkpoint and model directory."""

    def _validate_one(self, model, name, valid_set):
        saved = self.metrics
        self.metrics = valid_set.metrics
        try:
            return super()._validate_one(model, name, valid_set)
        finally:
            self.metrics = saved

    def _translate(self, model, sources, corpus) -> list[str]:
        from pasero_hf.generation.audio_inputs import generate_texts

        processor = self.processing_class
        return generate_texts(model, processor.tokenizer, processor.feature_extractor, sources, task=corpus.task,
                              beam_size=self.valid_beam_size, max_output_len=self.max_output_len)


# -- the steps -----------------------------------------------------------------------------------------------------

def speech_model_dir(config: TrainingConfig) -> Path:
    name = config.pretrained.model or config.run.ckpt
    if not name:
        raise ConfigError("model: task st fine-tunes a Whisper checkpoint: give --model DIR_OR_REPO_ID "
                          "(e.g. openai/whisper-small)")
    try:
        return Path(resolve_model_dir(name))
    except (OSError, ValueError) as error:
        raise ConfigError(f"model: {error}") from None


def load_processor(config: TrainingConfig):
    """The Whisper processor (feature extractor + tokenizer) of `model`."""
    from transformers import AutoFeatureExtractor, AutoTokenizer, WhisperProcessor

    model_dir = speech_model_dir(config)
    return WhisperProcessor(feature_extractor=AutoFeatureExtractor.from_pretrained(model_dir),
                            tokenizer=AutoTokenizer.from_pretrained(model_dir))


def _read(config: TrainingConfig, paths: list[str], option: str) -> list[tuple[str, list[Utterance]]]:
    data = config.data
    source = data.source_langs[0] if len(data.source_langs or []) == 1 else None
    target = data.target_langs[0] if len(data.target_langs or []) == 1 else None
    sets = []
    for path in paths:
        resolved = config.resolve_data_path(path, option)
        if resolved.is_dir():
            utterances = read_audio_dataset(resolved, config.speech.audio_column, config.speech.text_column,
                                            source, target)
        else:
            utterances = read_manifest(resolved, source, target)
        if not utterances:
            raise AudioError(f"{option}: {resolved} has no utterances")
        sets.append((resolved.name.rsplit(".", 1)[0] if resolved.is_file() else resolved.name, utterances))
    return sets


def build_speech_data(config: TrainingConfig, processor, rank: int = 0, world_size: int = 1) -> SpeechData:
    """Training stream and validation sets; every manifest line and audio file is checked first (missing, empty,
    corrupt or too long audio, unknown language, no text): nothing trains on half-read data."""
    if not config.speech.train_audio:
        raise ConfigError("train_audio: task st needs training manifests (train_audio: [train.tsv])")
    if not config.speech.valid_audio:
        raise ConfigError("valid_audio: at least one validation manifest is needed (validation drives model_best)")
    train_sets = _read(config, config.speech.train_audio, "train_audio")
    valid_sets = _read(config, config.speech.valid_audio, "valid_audio")
    extractor = processor.feature_extractor
    for _, utterances in train_sets + valid_sets:
        for utterance in utterances:
            if not utterance.source_lang:
                raise AudioError(f"{utterance.where}: no source_lang (add the column, or give -s LANG)")
        check_utterances(utterances, extractor)
    targets: dict[tuple, set] = {}
    for _, utterances in train_sets:
        for u in utterances:
            targets.setdefault((u.source_lang, u.task), set()).add(u.target_lang)
    for (source, task), langs in targets.items():
        if task == "translate" and len(langs) > 1:
            raise ConfigError(f"train_audio: {source} audio is translated into {', '.join(sorted(langs))}; Whisper's "
                              "prompt names the spoken language and the task only, so one target language per "
                              "spoken language")
    max_target_len = min(config.data.max_target_len or config.data.max_len or 10**9,
                         processor.tokenizer.model_max_length or 10**9, 448)
    all_train = [u for _, utterances in train_sets for u in utterances]
    stream = SpeechTrainStream(SpeechBatches(all_train, processor, max_target_len),
                               min(config.speech.utterances_per_batch, len(all_train)), config.data.seed,
                               rank, world_size)
    valid: dict[str, SpeechValidSet] = {}
    for name, utterances in valid_sets:
        groups: dict[tuple, list[Utterance]] = {}
        for u in utterances:
            groups.setdefault((u.source_lang, u.target_lang, u.task), []).append(u)
        for (source, target, task), group in groups.items():
            batches = SpeechBatches(group, processor, max_target_len)
            size = config.speech.utterances_per_batch
            metrics = ["wer"] if task == "transcribe" else [m for m in config.run.metrics if m != "wer"]
            valid[f"{name}.{source}-{target}"] = SpeechValidSet(
                SpeechCorpus(name, source, target, task),
                [batches.batch(list(range(i, min(i + size, len(group))))) for i in range(0, len(group), size)],
                group, [u.text for u in group], metrics)
    pairs = sorted({(u.source_lang, u.target_lang) for u in all_train})
    logger.info("speech data: %d training utterances (%s), %d validation sets", len(all_train),
                ", ".join(f"{s}-{t}" for s, t in pairs), len(valid))
    return SpeechData(stream, valid, pairs)


def load_speech_model(config: TrainingConfig, processor) -> torch.nn.Module:
    """The Whisper model of `model` (weights of `--ckpt` on top when both are given), LoRA-wrapped if asked."""
    from transformers import AutoModelForSpeechSeq2Seq, set_seed

    from pasero_hf.training.preflight import initial_checkpoint
    from pasero_hf.training.pretrained import apply_lora

    set_seed(config.data.seed)  # the same seed gives the same LoRA initialisation
    model = AutoModelForSpeechSeq2Seq.from_pretrained(speech_model_dir(config), dtype=torch.float32)
    if config.model.model_args:
        for key, value in config.model.model_args.items():
            if not hasattr(model.config, key):
                raise ConfigError(f"model_args: unknown Whisper option {key!r}")
            setattr(model.config, key, value)
    fill_generation_config(model, processor.tokenizer)
    if config.pretrained.model and config.run.ckpt and not config.run.continue_:
        lifecycle.load_initial_weights(model, initial_checkpoint(config.run.ckpt))
    return apply_lora(model, config) if config.model.lora_rank else model


def speech_inference_config(config: TrainingConfig, data: SpeechData) -> dict[str, Any]:
    return {"arch": "whisper", "task": "speech_translation", "pretrained_model": str(config.pretrained.model),
            "lang_pairs": [f"{s}-{t}" for s, t in data.lang_pairs], "beam_size": config.run.beam_size,
            "max_output_len": config.run.max_output_len}


def build_speech_trainer(config: TrainingConfig, processor, data: SpeechData, model, run: lifecycle.RunSetup):
    """The MT trainer set up for speech, with MODEL_DIR's training.yaml and inference.yaml written and the data
    position of the resume point."""
    args = run.args
    metric = config.run.early_stopping_metric
    computed = {"loss", *(m for s in data.valid.values() for m in s.metrics)}
    if metric not in computed:  # e.g. the default chrf on a transcription-only run
        metric = "wer" if "wer" in computed else "loss"
        logger.info("early_stopping_metric: %s (no validation set computes %s)", metric,
                    config.run.early_stopping_metric)
        args.metric_for_best_model = metric
        args.greater_is_better = metric not in LOWER_IS_BETTER
    inference = speech_inference_config(config, data)
    if run.is_main:
        config.write_training_yaml(config.model_dir / "training.yaml")
        write_yaml_atomically(config.model_dir / "inference.yaml", inference)
    if run.resume is not None:
        state = checkpoints.read_data_state(run.resume)
        if state is not None:
            data.train.load_state_dict(state)
        logger.info("resuming from %s", run.resume)
    model.generation_config.num_beams = config.run.beam_size
    model.generation_config.max_new_tokens = config.run.max_output_len
    trainable, total = trainable_parameter_count(model)
    logger.info("model: whisper, %s parameters (%s trainable)", f"{total:,}", f"{trainable:,}")
    _, callbacks = lifecycle.trainer_callbacks(config, metric)
    return SpeechSeq2SeqTrainer(
        model=model, args=args, train_dataset=data.train, eval_dataset=data.valid, processing_class=processor,
        callbacks=callbacks, **lifecycle.trainer_options(config), inference_config=inference,
        metrics=sorted(computed - {"loss"}),
    )


def speech_dry_run_report(config: TrainingConfig) -> str:
    """`--dry-run` with task st: every manifest and audio file checked; one line per set."""
    processor = load_processor(config)
    data = build_speech_data(config, processor)
    lines = [f"model: {speech_model_dir(config)} (window {processor.feature_extractor.chunk_length} s)"]
    train = data.train.batches.utterances
    lines.append(f"train: {len(train)} utterances, {', '.join(f'{s}-{t}' for s, t in data.lang_pairs)}, "
                 f"{sum(check_utterances(train, processor.feature_extractor)) / 60:.1f} min of audio")
    for name, valid_set in data.valid.items():
        lines.append(f"valid {name}: {len(valid_set.sources)} utterances, {valid_set.corpus.task}, "
                     f"metrics {', '.join(valid_set.metrics)}")
    return "\n".join(lines)


def prepare_speech_trainer(config: TrainingConfig):
    """What `pasero-train --task st` runs before the first step (the steps of the module docstring)."""
    processor = load_processor(config)
    data = build_speech_data(config, processor, lifecycle.rank_from_env(), lifecycle.world_size_from_env())
    run = lifecycle.start_run(config)
    model = load_speech_model(config, processor)
    lifecycle.reset_optimizer(config, model, run)
    trainer = build_speech_trainer(config, processor, data, model, run)
    return trainer, trainer.stop_callback, run.resume
