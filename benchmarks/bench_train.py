"""Training throughput (target tokens/s, one process, CPU float32) on the same batches of the Bible corpus:

- PaseroForConditionalGeneration (the `make demo` size: embed 256, 3+3 layers, FFN 1024, 8k BPE) through our
  PaseroSeq2SeqTrainer;
- M2M100ForConditionalGeneration of identical size through the plain Hugging Face Seq2SeqTrainer
  (label_smoothing_factor 0.1, its own loss);
- the data pipeline alone (batches/s of the token-based training stream, no model).

Both models train in this process, alternately, on the same pre-built batches, so the ratio holds on a busy machine.
The original Pasero trained this model at ~1,930 target tokens/s with 1 thread and ~3,360 with 2 (same CPU).

    python benchmarks/bench_train.py [--steps 20] [--warmup 5] [--repeats 3] [--threads 1 2]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from common import machine_info, markdown_table, median_range, peak_rss_mb, record_bars, update_results
from transformers import (
    M2M100Config,
    M2M100ForConditionalGeneration,
    Seq2SeqTrainer,
    Seq2SeqTrainingArguments,
    TrainerCallback,
)

from pasero_hf.data.config import DataConfig
from pasero_hf.data.sample_data import bible_en_es_dir
from pasero_hf.data.train_stream import build_train_dataset, data_loader_throughput
from pasero_hf.models.pasero import PaseroConfig, PaseroForConditionalGeneration
from pasero_hf.tokenization.tokenization_pasero import PaseroTokenizer
from pasero_hf.training.trainer import PaseroSeq2SeqTrainer

REPO = Path(__file__).resolve().parents[1]
TOKENIZER = REPO / "tests" / "fixtures" / "pasero-models" / "bible-en-es-8k"
MODEL_KWARGS = {"embed_dim": 256, "encoder_layers": 3, "decoder_layers": 3}


class StepClock(TrainerCallback):
    """perf_counter() at the end of every optimizer step."""

    def __init__(self):
        self.times: list[float] = []

    def on_step_end(self, args, state, control, **kwargs):
        self.times.append(time.perf_counter())


class OneBatchPerItem(torch.utils.data.Dataset):
    """Pre-built batches as dataset items, for the plain Trainer (collated by taking the single item)."""

    def __init__(self, batches: list[dict]):
        self.batches = batches

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, index: int) -> dict:
        return self.batches[index]


def arguments(output_dir: str, steps: int) -> Seq2SeqTrainingArguments:
    return Seq2SeqTrainingArguments(
        output_dir=output_dir, max_steps=steps, learning_rate=1e-3, warmup_steps=0, per_device_train_batch_size=1,
        logging_steps=10_000, save_strategy="no", eval_strategy="no", report_to="none", disable_tqdm=True,
        use_cpu=True, remove_unused_columns=False, label_smoothing_factor=0.1, seed=1,
        train_sampling_strategy="sequential",  # the same batches in the same order for both models
    )


def tokens_per_second(clock: StepClock, batches: list[dict], warmup: int) -> float:
    counted = batches[warmup: len(clock.times)]
    tokens = sum(int((b["labels"] != -100).sum()) for b in counted)
    return tokens / (clock.times[-1] - clock.times[warmup - 1])


def run_pasero(batches: list[dict], vocab_size: int, warmup: int) -> float:
    torch.manual_seed(1)
    model = PaseroForConditionalGeneration(PaseroConfig.from_arch("transformer_small", vocab_size=vocab_size,
                                                                  **MODEL_KWARGS))
    clock = StepClock()
    with tempfile.TemporaryDirectory() as tmp:
        trainer = PaseroSeq2SeqTrainer(model=model, args=arguments(tmp, len(batches)), train_dataset=batches,
                                       callbacks=[clock], label_smoothing=0.1)
        trainer.train()
    return tokens_per_second(clock, batches, warmup)


def run_m2m100(batches: list[dict], vocab_size: int, warmup: int) -> float:
    torch.manual_seed(1)
    config = M2M100Config(vocab_size=vocab_size, d_model=256, encoder_layers=3, decoder_layers=3,
                          encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=1024,
                          decoder_ffn_dim=1024, dropout=0.1, attention_dropout=0.0, encoder_layerdrop=0.0,
                          decoder_layerdrop=0.0, pad_token_id=1, eos_token_id=2, decoder_start_token_id=2)
    model = M2M100ForConditionalGeneration(config)
    tensors = [{k: v for k, v in b.items() if isinstance(v, torch.Tensor)} for b in batches]
    clock = StepClock()
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Seq2SeqTrainer(model=model, args=arguments(tmp, len(batches)), train_dataset=OneBatchPerItem(tensors),
                                 data_collator=lambda items: items[0], callbacks=[clock])
        trainer.train()
    return tokens_per_second(clock, batches, warmup)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=20, help="timed training steps per run")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each trainer per thread count (alternating)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps before")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="torch thread counts to measure")
    parser.add_argument("--batch-size", type=int, default=2048, help="tokens per batch (as the demo)")
    args = parser.parse_args()

    tokenizer = PaseroTokenizer(bpe_file=str(TOKENIZER / "bpecodes"), dict_file=str(TOKENIZER / "dict.txt"))
    data = bible_en_es_dir()
    config = DataConfig.from_dict({"data_dir": str(data), "source_langs": ["en"], "target_langs": ["es"],
                                   "train_corpora": [{"paths": ["train"]}], "batch_size": args.batch_size,
                                   "seed": 1})
    with tempfile.TemporaryDirectory() as cache:
        stream = build_train_dataset(config, tokenizer, decoder_start_token_id=tokenizer.eos_token_id,
                                     cache_dir=cache)
        loader = data_loader_throughput(stream, num_batches=200)
        iterator = iter(stream)
        batches = [next(iterator) for _ in range(args.warmup + args.steps)]

    rows, bars = [], []
    for threads in args.threads:
        torch.set_num_threads(threads)
        pasero, m2m100 = [], []
        for _ in range(args.repeats):
            pasero.append(run_pasero(batches, len(tokenizer), args.warmup))
            m2m100.append(run_m2m100(batches, len(tokenizer), args.warmup))
            print(f"{threads} thread(s): Pasero + PaseroSeq2SeqTrainer {pasero[-1]:,.0f} tgt tok/s, "
                  f"M2M100 + Seq2SeqTrainer {m2m100[-1]:,.0f} tgt tok/s", flush=True)
        ratios = [ours / theirs for ours, theirs in zip(pasero, m2m100)]
        ratio = statistics.median(ratios)
        rows.append([threads, median_range(pasero, "{:,.0f}"), median_range(m2m100, "{:,.0f}"), median_range(ratios)])
        bars.append((f"training throughput, {threads} thread(s), vs M2M100 + Seq2SeqTrainer", ">= 1.0x",
                     f"{ratio:.2f}x (pairs {min(ratios):.2f}-{max(ratios):.2f})", ratio >= 1.0))
    table = markdown_table(
        ["torch threads", "Pasero + PaseroSeq2SeqTrainer (tgt tok/s, median (min-max))",
         "M2M100 + Seq2SeqTrainer (tgt tok/s, median (min-max))", "ratio, median of pairs (min-max)"], rows)
    mean_tokens = sum(int((b["labels"] != -100).sum()) for b in batches) / len(batches)
    notes = (f"{args.repeats} runs of each, alternating; each run: {args.steps} timed steps after {args.warmup} "
             f"warm-up steps, batches of {args.batch_size} tokens "
             f"(~{mean_tokens:,.0f} target tokens each), 7.4M-parameter models, float32. Ours runs with its defaults: "
             "linear layers through oneDNN on CPU, where plain transformers uses PyTorch's MKL path.\n\n"
             f"Data pipeline alone: {loader['batches_per_s']:,.1f} batches/s ({loader['tokens_per_s']:,.0f} tokens/s, "
             f"source + target). Peak RSS {peak_rss_mb():,.0f} MiB.\n\n"
             "Reference: the original Pasero trained this model at ~1,930 target tokens/s with 1 thread and "
             "~3,360 with 2 on the 2-core machine where the fixture was made.")
    print(notes)
    update_results("Training throughput", table + "\n\n" + notes,
                   command=f"python benchmarks/bench_train.py --steps {args.steps} --repeats {args.repeats} --threads "
                           + " ".join(map(str, args.threads)))
    record_bars("training", bars)
    print(machine_info())


if __name__ == "__main__":
    main()
