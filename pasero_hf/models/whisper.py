"""Whisper helpers: the generation settings `generate(language=, task=)` needs, and a tiny random Whisper built
offline (a byte-level tokenizer with Whisper's special tokens, a small `WhisperConfig`) for tests and the speech
sample run. Real checkpoints (`openai/whisper-*`) already carry their tokenizer and generation settings.
"""

from __future__ import annotations

import json
from pathlib import Path

# Whisper's special tokens after <|endoftext|>, in the order its tokenizer relies on: the language of
# `set_prefix_tokens(language=...)` is found at <|startoftranscript|> + 1 + its index in LANGUAGES.
TASKS = ("translate", "transcribe")
NO_TIMESTAMPS = "<|notimestamps|>"
START = "<|startoftranscript|>"
END = "<|endoftext|>"


def language_token(lang: str) -> str:
    return f"<|{lang}|>"


def whisper_language_codes() -> list[str]:
    from transformers.models.whisper.tokenization_whisper import LANGUAGES

    return list(LANGUAGES)


def fill_generation_config(model, tokenizer) -> None:
    """Give `model.generation_config` what Whisper's `generate(language=..., task=...)` reads, from the tokenizer's
    special tokens (a checkpoint converted or built without them otherwise fails at the first `generate`)."""
    vocab = tokenizer.get_vocab()
    config = model.generation_config
    if not getattr(config, "lang_to_id", None):
        config.lang_to_id = {language_token(code): vocab[language_token(code)]
                             for code in whisper_language_codes() if language_token(code) in vocab}
    if not getattr(config, "task_to_id", None):
        config.task_to_id = {task: vocab[f"<|{task}|>"] for task in TASKS if f"<|{task}|>" in vocab}
    config.is_multilingual = bool(config.lang_to_id)
    config.no_timestamps_token_id = vocab[NO_TIMESTAMPS]
    config.decoder_start_token_id = vocab[START]
    config.eos_token_id = vocab[END]
    config.pad_token_id = vocab[END]
    config.forced_decoder_ids = None
    for name in ("suppress_tokens", "begin_suppress_tokens"):  # WhisperConfig's defaults are ids of the real vocabulary
        setattr(config, name, [i for i in getattr(config, name, None) or [] if i < len(tokenizer)])
    # a generation config marked as derived from the model's config loses these entries when it is reloaded
    config._from_model_config = False


def offline_whisper_tokenizer(texts: list[str] = (), merges: int = 200):
    """A `WhisperTokenizer` with Whisper's special tokens (every language, the tasks, <|notimestamps|>) and a small
    byte-level BPE trained on `texts`, built without any download."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import WhisperTokenizer

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(vocab_size=len(alphabet) + merges, initial_alphabet=alphabet,
                                  special_tokens=[END], show_progress=False)
    bpe.train_from_iterator(list(texts) or [" "], trainer)
    model = json.loads(bpe.to_str())["model"]
    vocab = dict(model["vocab"])
    merge_list = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    specials = [START, *(language_token(code) for code in whisper_language_codes()), "<|translate|>",
                "<|transcribe|>", "<|startoflm|>", "<|startofprev|>", "<|nospeech|>", NO_TIMESTAMPS]
    tokenizer = WhisperTokenizer(vocab=vocab, merges=merge_list)
    tokenizer.add_special_tokens({"additional_special_tokens": specials})
    return tokenizer


def tiny_random_whisper(tokenizer, chunk_length: int = 2, d_model: int = 64, layers: int = 1, seed: int = 0):
    """(model, feature_extractor): a randomly initialised Whisper with a `chunk_length`-second window (80 mel bins,
    `chunk_length * 50` encoder positions) and generation settings filled from `tokenizer`."""
    import torch
    from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperForConditionalGeneration

    feature_extractor = WhisperFeatureExtractor(feature_size=80, sampling_rate=16000, hop_length=160,
                                                chunk_length=chunk_length, n_fft=400)
    vocab = tokenizer.get_vocab()
    config = WhisperConfig(
        vocab_size=len(tokenizer), num_mel_bins=80, d_model=d_model, encoder_layers=layers, decoder_layers=layers,
        encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=4 * d_model,
        decoder_ffn_dim=4 * d_model, max_source_positions=feature_extractor.nb_max_frames // 2,
        max_target_positions=128, pad_token_id=vocab[END], bos_token_id=vocab[END], eos_token_id=vocab[END],
        decoder_start_token_id=vocab[START])
    torch.manual_seed(seed)
    model = WhisperForConditionalGeneration(config)
    fill_generation_config(model, tokenizer)
    return model, feature_extractor


def save_tiny_random_whisper(output_dir: str | Path, texts: list[str] = (), **kwargs) -> Path:
    """Write a tiny random Whisper (model, tokenizer, feature extractor) to `output_dir`."""
    tokenizer = offline_whisper_tokenizer(texts)
    model, feature_extractor = tiny_random_whisper(tokenizer, **kwargs)
    output_dir = Path(output_dir)
    model.save_pretrained(output_dir)
    tokenizer.save_pretrained(output_dir)
    feature_extractor.save_pretrained(output_dir)
    return output_dir


def main(argv: list[str] | None = None) -> int:
    """`python -m pasero_hf.models.whisper DIR --texts-from MANIFEST.tsv`: write a tiny random Whisper whose
    tokenizer is trained on the manifest's `text` column."""
    import argparse
    import csv

    parser = argparse.ArgumentParser(description=main.__doc__.split(":", 1)[1].strip())
    parser.add_argument("output_dir")
    parser.add_argument("--texts-from", metavar="MANIFEST", help="TSV manifest whose texts train the tokenizer")
    args = parser.parse_args(argv)
    texts = []
    if args.texts_from:
        with open(args.texts_from, encoding="utf-8", newline="") as lines:
            texts = [row.get("text") or "" for row in csv.DictReader(lines, delimiter="\t", quoting=csv.QUOTE_NONE)]
    print(f"tiny random Whisper: {save_tiny_random_whisper(args.output_dir, texts)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
