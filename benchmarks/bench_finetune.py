"""Fine-tuning a pretrained model through our recipe (`--model DIR`) vs a `run_translation.py`-style plain
Seq2SeqTrainer, and the memory saved by `--trim-vocab`.

1. Throughput: a small M2M100-shaped model (d_model 256, 3+3 layers, NLLB-style tokenizer of 8k tokens trained on
   the Bible corpus) fine-tuned en->es. Ours: `prepare_trainer` of a `--model` config (token batches, label-smoothed
   loss, oneDNN linear layers). Baseline: `transformers.Seq2SeqTrainer` as `run_translation.py` drives it (the model's
   own loss with `label_smoothing_factor`), fed the very same batches (same tokens per batch, same precision, float32).
   Each run is a fresh process (peak RSS is per run); runs alternate.
2. `--trim-vocab` memory: the same recipe on a 256k-vocabulary-shaped model (NLLB-200's 256,204 tokens: the 8k real
   tokens plus never-seen filler tokens, d_model 128, 1+1 layers), peak RSS of a few training steps with and without
   trimming, each in a fresh process.

    python benchmarks/bench_finetune.py [--steps 10] [--warmup 3] [--repeats 2] [--batch-size 1024]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch
from common import in_child, machine_info, markdown_table, median_range, peak_rss_mb, record_bars, update_results
from transformers import TrainerCallback

BIG_VOCAB = 256_204


class StepClock(TrainerCallback):
    def __init__(self):
        self.times: list[float] = []

    def on_step_end(self, args, state, control, **kwargs):
        self.times.append(time.perf_counter())


def build_pretrained(directory: Path, vocab_size: int, d_model: int, layers: int, filler: int = 0) -> None:
    """An NLLB-style tokenizer trained on the Bible text (plus `filler` never-seen tokens) and a random M2M100."""
    from tokenizers import SentencePieceBPETokenizer, Tokenizer
    from transformers import M2M100Config, M2M100ForConditionalGeneration, NllbTokenizer

    from pasero_hf.data.sample_data import bible_en_es_dir
    from pasero_hf.models.vocab_trimming import tokenizer_id_bound

    data = bible_en_es_dir()
    bpe = SentencePieceBPETokenizer()
    bpe.train([str(data / "train.en"), str(data / "train.es")], vocab_size=vocab_size,
              special_tokens=["<s>", "<pad>", "</s>", "<unk>"], show_progress=False)
    backend = bpe._tokenizer
    if filler:
        spec = json.loads(backend.to_str())
        vocab = spec["model"]["vocab"]
        for i in range(filler):
            vocab[f"▁filler{i}"] = len(vocab)
        backend = Tokenizer.from_str(json.dumps(spec))
    tokenizer = NllbTokenizer(tokenizer_object=backend, src_lang="eng_Latn", tgt_lang="spa_Latn")
    tokenizer.save_pretrained(directory)
    torch.manual_seed(1)
    config = M2M100Config(
        vocab_size=tokenizer_id_bound(tokenizer), d_model=d_model, encoder_layers=layers, decoder_layers=layers,
        encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=4 * d_model,
        decoder_ffn_dim=4 * d_model, dropout=0.1, attention_dropout=0.0, activation_dropout=0.0,
        encoder_layerdrop=0.0, decoder_layerdrop=0.0, pad_token_id=1, eos_token_id=2, bos_token_id=0,
        decoder_start_token_id=2, max_position_embeddings=512)
    M2M100ForConditionalGeneration(config).save_pretrained(directory)


def recipe_config(model_dir: Path, run_dir: Path, cache_dir: str, steps: int, batch_size: int, trim: bool = False):
    from pasero_hf.data.sample_data import bible_en_es_dir
    from pasero_hf.training.config import load_training_config

    return load_training_config(
        data_dir=str(bible_en_es_dir()), source_lang="en", target_lang="es", train_corpora=[{"paths": ["train"]}],
        valid_corpora=[{"paths": ["valid"]}], valid_max_lines=1, model=str(model_dir), trim_vocab=trim,
        batch_size=batch_size, max_len=batch_size, lr=1e-4, warmup=1, max_steps=steps, valid_interval=100_000,
        log_interval=100_000, label_smoothing=0.1, model_dir=str(run_dir), cache_dir=cache_dir,
        max_lines=3000, seed=1)


def ours(model_dir: str, cache_dir: str, steps: int, warmup: int, batch_size: int, trim: bool, queue) -> None:
    torch.set_num_threads(1)
    from pasero_hf.training.run import prepare_trainer

    with tempfile.TemporaryDirectory() as tmp:
        config = recipe_config(Path(model_dir), Path(tmp) / "run", cache_dir, steps + warmup, batch_size, trim)
        trainer, _, _ = prepare_trainer(config)
        clock = StepClock()
        trainer.add_callback(clock)
        stream = trainer.train_dataset
        iterator = iter(type(stream)(stream.corpora, stream.datasets, stream.config, stream.pad_token_id,
                                     stream.decoder_start_token_id))
        batches = [next(iterator) for _ in range(steps + warmup)]  # the batches the trainer sees, to count tokens
        trainer.train()
    tokens = sum(int((b["labels"] != -100).sum()) for b in batches[warmup:len(clock.times)])
    queue.put({"tok_s": tokens / (clock.times[-1] - clock.times[warmup - 1]), "rss": peak_rss_mb(),
               # as numpy: tensors would travel as shared-memory handles that die with this process
               "batches": [{k: v.numpy() for k, v in b.items() if isinstance(v, torch.Tensor)} for b in batches]})


def plain(model_dir: str, batches: list[dict], warmup: int, queue) -> None:
    """run_translation.py's trainer: Seq2SeqTrainer, the model's own loss with label_smoothing_factor."""
    torch.set_num_threads(1)
    from transformers import AutoModelForSeq2SeqLM, Seq2SeqTrainer, Seq2SeqTrainingArguments

    batches = [{k: torch.from_numpy(v) for k, v in b.items()} for b in batches]

    class Batches(torch.utils.data.Dataset):
        def __len__(self):
            return len(batches)

        def __getitem__(self, index):
            return batches[index]

    model = AutoModelForSeq2SeqLM.from_pretrained(model_dir)
    clock = StepClock()
    with tempfile.TemporaryDirectory() as tmp:
        args = Seq2SeqTrainingArguments(
            output_dir=tmp, max_steps=len(batches), learning_rate=1e-4, warmup_steps=1, per_device_train_batch_size=1,
            logging_steps=100_000, save_strategy="no", eval_strategy="no", report_to="none", disable_tqdm=True,
            use_cpu=True, remove_unused_columns=False, label_smoothing_factor=0.1, seed=1,
            train_sampling_strategy="sequential")
        Seq2SeqTrainer(model=model, args=args, train_dataset=Batches(), data_collator=lambda items: items[0],
                       callbacks=[clock]).train()
    tokens = sum(int((b["labels"] != -100).sum()) for b in batches[warmup:len(clock.times)])
    queue.put({"tok_s": tokens / (clock.times[-1] - clock.times[warmup - 1]), "rss": peak_rss_mb()})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=1024, help="tokens per batch")
    parser.add_argument("--trim-steps", type=int, default=2)
    parser.add_argument("--trim-batch-size", type=int, default=512)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as root:
        cache = str(Path(root) / "cache")
        small = Path(root) / "m2m100-small"
        build_pretrained(small, vocab_size=8000, d_model=256, layers=3)
        our_runs, plain_runs = [], []
        for _ in range(args.repeats):
            result = in_child(ours, str(small), cache, args.steps, args.warmup, args.batch_size, False)
            our_runs.append(result)
            plain_runs.append(in_child(plain, str(small), result["batches"], args.warmup))
            print(f"ours {our_runs[-1]['tok_s']:,.0f} tgt tok/s ({our_runs[-1]['rss']:,.0f} MiB), plain "
                  f"Seq2SeqTrainer {plain_runs[-1]['tok_s']:,.0f} tgt tok/s ({plain_runs[-1]['rss']:,.0f} MiB)",
                  flush=True)
        ratios = [a["tok_s"] / b["tok_s"] for a, b in zip(our_runs, plain_runs)]

        big = Path(root) / "m2m100-256k"
        build_pretrained(big, vocab_size=8000, d_model=128, layers=1, filler=BIG_VOCAB - 8000)
        untrimmed = in_child(ours, str(big), cache, args.trim_steps, 1, args.trim_batch_size, False)
        trimmed = in_child(ours, str(big), cache, args.trim_steps, 1, args.trim_batch_size, True)
        print(f"256k vocabulary: untrimmed {untrimmed['rss']:,.0f} MiB, trimmed {trimmed['rss']:,.0f} MiB", flush=True)

    ratio = statistics.median(ratios)
    memory_ratio = trimmed["rss"] / untrimmed["rss"]
    table = markdown_table(
        ["run", "target tokens/s, median (min-max)", "peak RSS MiB, median (min-max)"],
        [["ours: --model + PaseroSeq2SeqTrainer", median_range([r["tok_s"] for r in our_runs], "{:,.0f}"),
          median_range([r["rss"] for r in our_runs], "{:,.0f}")],
         ["run_translation.py-style Seq2SeqTrainer", median_range([r["tok_s"] for r in plain_runs], "{:,.0f}"),
          median_range([r["rss"] for r in plain_runs], "{:,.0f}")],
         ["ratio ours / plain (median of pairs)", median_range(ratios), ""]])
    trim_table = markdown_table(
        ["256k-vocabulary model", "peak RSS (MiB)", "target tokens/s"],
        [["full vocabulary", untrimmed["rss"], untrimmed["tok_s"]],
         ["--trim-vocab", trimmed["rss"], trimmed["tok_s"]],
         ["trimmed / full", f"{memory_ratio:.2f}x", ""]])
    notes = (f"{args.repeats} alternating runs of each, each a fresh process with 1 torch thread: {args.steps} timed "
             f"steps after {args.warmup} warm-up steps, batches of {args.batch_size} tokens, float32, the same batches "
             "for both. The machine was shared with other jobs while this ran: absolute numbers are noisy, the "
             "ratios of paired runs less so.\n\n"
             f"Vocabulary trimming: {args.trim_steps} steps of batches of {args.trim_batch_size} tokens on an "
             f"M2M100 with {BIG_VOCAB:,} tokens (d_model 128, 1+1 layers); peak RSS includes loading the full model "
             "before trimming.")
    print(table, trim_table, notes, sep="\n\n")
    update_results("Fine-tuning pretrained models", table + "\n\n" + trim_table + "\n\n" + notes,
                   command=f"python benchmarks/bench_finetune.py --steps {args.steps} --repeats {args.repeats}")
    record_bars("fine-tuning", [
        ("fine-tuning throughput vs run_translation.py-style Seq2SeqTrainer", ">= 1.0x",
         f"{ratio:.2f}x (pairs {min(ratios):.2f}-{max(ratios):.2f})", ratio >= 1.0),
        ("--trim-vocab peak RSS / full, 256k-vocabulary model", "<= 0.5x",
         f"{memory_ratio:.2f}x ({trimmed['rss']:,.0f} / {untrimmed['rss']:,.0f} MiB)", memory_ratio <= 0.5),
    ])
    print(machine_info())


if __name__ == "__main__":
    main()
