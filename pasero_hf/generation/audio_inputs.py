"""Decoding audio with a Whisper model: `TextGenerator.decode_audio` and `pasero-decode -i clips.tsv|a.wav ...`.

Audio is read and resampled by `pasero_hf.data.audio` (wav, flac, ogg, mp3 through libsndfile), turned into mel
features padded to the model's window (Whisper hallucinates on unpadded features), and decoded by the model's own
`generate(language=SPOKEN, task=translate|transcribe)`: the decoder prompt is
`<|startoftranscript|> <|fr|> <|translate|> <|notimestamps|>`. Utterances are decoded in groups of one spoken
language and task, `lines_per_batch` (default 16) at a time, and returned in input order.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import torch

from pasero_hf.data.audio import Utterance, check_utterances, features_dataset, read_audio_inputs
from pasero_hf.generation.search import generation_notice_silenced

TASKS = ("translate", "transcribe")


DEFAULT_LINES_PER_BATCH = 16


def is_speech_model(config) -> bool:
    """Whether a model configuration is a speech encoder-decoder (Whisper)."""
    return getattr(config, "model_type", None) == "whisper"


def load_feature_extractor(model_dir):
    from transformers import AutoFeatureExtractor

    return AutoFeatureExtractor.from_pretrained(model_dir)


def resolve_task(task: str | None, source_lang: str | None, target_lang: str | None) -> str:
    """`task`, else 'transcribe' when the target language is the spoken one (or not given), else 'translate'."""
    if task is not None:
        if task not in TASKS:
            raise ValueError(f"task: {task!r} is not one of {', '.join(TASKS)}")
        return task
    return "transcribe" if target_lang in (None, source_lang) else "translate"


@torch.inference_mode()
def generate_texts(model, tokenizer, feature_extractor, utterances: Sequence[Utterance], *, task: str | None = None,
                   beam_size: int = 1, max_output_len: int = 100, lines_per_batch: int | None = None) -> list[str]:
    """The model's output text for each utterance (its own `source_lang`, and `task` or the task its languages
    imply), in order. Every file is checked (missing, empty, corrupt, longer than the window) before decoding."""
    check_utterances(list(utterances), feature_extractor)
    if not getattr(model.generation_config, "lang_to_id", None):  # a Whisper saved without its language table
        from pasero_hf.models.whisper import fill_generation_config

        fill_generation_config(model, tokenizer)
    groups: dict[tuple, list[int]] = {}
    for index, utterance in enumerate(utterances):
        key = (utterance.source_lang, resolve_task(task, utterance.source_lang, utterance.target_lang))
        groups.setdefault(key, []).append(index)
    outputs: list[str] = [""] * len(utterances)
    batch_size = lines_per_batch or DEFAULT_LINES_PER_BATCH
    features = features_dataset(list(utterances), feature_extractor)
    device = next(model.parameters()).device
    dtype = next(model.parameters()).dtype
    for (language, group_task), indices in groups.items():
        for start in range(0, len(indices), batch_size):
            batch = indices[start:start + batch_size]
            inputs = torch.as_tensor(features[batch]["input_features"], dtype=dtype, device=device)
            kwargs: dict[str, Any] = {"task": group_task, "num_beams": beam_size, "max_new_tokens": max_output_len}
            if language is not None:
                kwargs["language"] = language
            # Whisper's own `generate` passes its suppress-token settings next to a generation config, which
            # transformers then warns about on every first call: nothing a user can change.
            with generation_notice_silenced("together with generation-related arguments=({'", "suppress_tokens"):
                ids = model.generate(input_features=inputs, **kwargs)
            ids = getattr(ids, "sequences", ids)
            for index, text in zip(batch, tokenizer.batch_decode(ids, skip_special_tokens=True)):
                outputs[index] = text.strip()
    return outputs


def decode_audio(generator, audio: Sequence[str | Utterance], *, source_lang: str | None = None,
                 target_lang: str | None = None, task: str | None = None, **options: Any) -> list[list[dict]]:
    """`TextGenerator.decode_audio`: like `decode`, for audio files, manifests or `Utterance`s (one hypothesis
    each: `detok`, `tokens`)."""
    feature_extractor = getattr(generator, "feature_extractor", None)
    if feature_extractor is None:
        raise ValueError("this model takes text, not audio (audio inputs need a speech model such as Whisper)")
    utterances = [u if isinstance(u, Utterance) else None for u in audio]
    paths = [a for a in audio if not isinstance(a, Utterance)]
    read = iter(read_audio_inputs(paths, source_lang, target_lang))
    utterances = [u if u is not None else next(read) for u in utterances]
    for utterance in utterances:
        utterance.source_lang = utterance.source_lang or source_lang
        utterance.target_lang = utterance.target_lang or target_lang
    decoding = generator.options.replace(options, origin="decoding options") if options else generator.options
    texts = generate_texts(generator.model, generator.tokenizer, feature_extractor, utterances, task=task,
                           beam_size=decoding.beam_size, max_output_len=decoding.max_output_len,
                           lines_per_batch=decoding.lines_per_batch)
    return [[{"detok": text, "tokens": generator.tokenizer.tokenize(text)}] for text in texts]


def decode_audio_files(generator, args) -> int:
    """`pasero-decode` on audio inputs: outputs one line per utterance (-o or standard output); scores against
    the manifests' `text` or `-r` files (WER for transcripts, BLEU/chrF for translations)."""
    from pasero_hf.metrics import DEFAULT_METRICS, corpus_scores

    if not args.input:
        raise ValueError("a speech model decodes audio: give -i FILE... (wav/flac/ogg/mp3 files, .tsv/.jsonl "
                         "manifests or datasets directories)")
    source = (args.source_lang or [None])[0]
    target = (args.target_lang or [None])[0]
    utterances = read_audio_inputs(args.input, source, target)
    tasks = {resolve_task(args.task, u.source_lang, u.target_lang) for u in utterances}
    texts = generate_texts(generator.model, generator.tokenizer, generator.feature_extractor, utterances,
                           task=args.task, beam_size=generator.options.beam_size,
                           max_output_len=generator.options.max_output_len,
                           lines_per_batch=generator.options.lines_per_batch)
    output = "\n".join(texts) + ("\n" if texts else "")
    if args.output:
        with open(args.output[0], "w", encoding="utf-8") as stream:
            stream.write(output)
    else:
        sys.stdout.write(output)
    references = [u.text for u in utterances]
    if args.reference:
        references = []
        for path in args.reference:
            with open(path, encoding="utf-8") as lines:
                references += lines.read().splitlines()
        if len(references) != len(texts):
            raise ValueError(f"{' '.join(args.reference)}: {len(references)} reference lines for {len(texts)} "
                             "audio inputs")
    if all(ref is not None for ref in references) and texts:
        metrics = ["wer"] if tasks == {"transcribe"} else list(args.metrics or DEFAULT_METRICS)
        scores = corpus_scores(texts, references, metrics=metrics, lowercase=args.eval_lc)
        generator.metrics = scores
        print(" | ".join(["/".join(sorted(tasks))] + [f"{name} {value:.2f}" for name, value in scores.items()]), file=sys.stderr)
    return 0
