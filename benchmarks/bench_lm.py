"""Fine-tuning a causal LM on translation prompts: our recipe (full and LoRA) vs a plain transformers + PEFT Trainer.

A small Llama-shaped model (hidden 384, 4 layers, a BPE tokenizer of 8k tokens trained on the Bible corpus) is
fine-tuned on en->es prompts ("en: SOURCE\\nes:" + target) of the bundled Bible corpus:

- ours, full fine-tuning: `prepare_lm_trainer` of a `--task lm --model DIR` config (token batches, target-only loss);
- ours, LoRA rank 16 on every projection (`--lora-rank 16`);
- plain: `transformers.Trainer` over `peft.get_peft_model(model, LoraConfig(r=16, same targets))`, the model's own
  loss (labels -100 on the prompt), batched as a plain recipe does: the same tokenized examples, shuffled, a fixed
  number per batch (our batches' mean), padded to the longest (`DataCollatorForSeq2Seq`'s way);
- plain, same batches: the same Trainer fed the very batches of our LoRA run, which isolates the cost of a step
  around the model (our token batches group sentences of similar length, so they carry less padding).

Target tokens/s over the timed steps, peak RSS and trainable parameters; each run a fresh process with one torch
thread; runs alternate.

    python benchmarks/bench_lm.py [--steps 10] [--warmup 3] [--repeats 2] [--batch-size 1024]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from common import in_child, machine_info, markdown_table, median_range, peak_rss_mb, record_bars, update_results
from transformers import TrainerCallback

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
PAD_ID = 1  # the tokenizer's <pad> (build_model)


class StepClock(TrainerCallback):
    def __init__(self):
        self.times: list[float] = []
        self.cpu: list[float] = []  # CPU seconds of this process (all its threads): less disturbed by a busy machine

    def on_step_end(self, args, state, control, **kwargs):
        self.times.append(time.perf_counter())
        self.cpu.append(time.process_time())


def rates(clock: StepClock, batches: list[dict], warmup: int) -> dict:
    """Target tokens/s and CPU seconds per 1,000 target tokens over the steps after `warmup`."""
    tokens = sum(int((b["labels"] != -100).sum()) for b in batches[warmup:len(clock.times)])
    return {"tok_s": tokens / (clock.times[-1] - clock.times[warmup - 1]),
            "cpu_per_ktok": 1000 * (clock.cpu[-1] - clock.cpu[warmup - 1]) / tokens}


def build_model(directory: Path) -> None:
    """A Llama-shaped random model with a Metaspace BPE tokenizer trained on the Bible text."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    from pasero_hf.data.sample_data import bible_en_es_dir

    data = bible_en_es_dir()
    backend = Tokenizer(models.BPE(unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    backend.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    backend.train([str(data / "train.en"), str(data / "train.es")],
                  trainers.BpeTrainer(vocab_size=8000, special_tokens=["<s>", "<pad>", "</s>", "<unk>"],
                                      initial_alphabet=["\n"], show_progress=False))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<s>", eos_token="</s>",
                                        pad_token="<pad>", unk_token="<unk>")
    tokenizer.save_pretrained(directory)
    torch.manual_seed(1)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=384, intermediate_size=1024, num_hidden_layers=4,
                         num_attention_heads=6, num_key_value_heads=6, max_position_embeddings=1024,
                         bos_token_id=0, pad_token_id=1, eos_token_id=2, tie_word_embeddings=False)
    LlamaForCausalLM(config).save_pretrained(directory)


def prepare_data(directory: Path, lines: int = 3000) -> None:
    """The first `lines` Bible training pairs, and 8 validation pairs (the end-of-training validation is not timed,
    but a short one keeps the benchmark short)."""
    from pasero_hf.data.sample_data import bible_en_es_dir

    directory.mkdir()
    for split, count in (("train", lines), ("valid", 8)):
        for lang in ("en", "es"):
            with open(bible_en_es_dir() / f"{split}.{lang}", encoding="utf-8") as file:
                (directory / f"{split}.{lang}").write_text("".join(next(file) for _ in range(count)), encoding="utf-8")


def ours(model_dir: str, data_dir: str, cache_dir: str, steps: int, warmup: int, batch_size: int, lora_rank: int,
         queue) -> None:
    torch.set_num_threads(1)
    from pasero_hf.training.config import load_training_config
    from pasero_hf.training.lm import prepare_lm_trainer
    from pasero_hf.training.trainer import trainable_parameter_count

    with tempfile.TemporaryDirectory() as tmp:
        config = load_training_config(
            task="lm", model=model_dir, data_dir=data_dir, source_lang="en", target_lang="es",
            train_corpora=[{"paths": ["train"]}], valid_corpora=[{"paths": ["valid"]}], valid_max_lines=1,
            batch_size=batch_size, max_len=256, lr=1e-4, lr_scheduler="constant", warmup=0,
            max_steps=steps + warmup, valid_interval=100_000, log_interval=100_000, label_smoothing=0.0,
            lora_rank=lora_rank, lora_alpha=2 * lora_rank or 8, lora_target_modules=TARGETS if lora_rank else None,
            model_dir=str(Path(tmp) / "run"), cache_dir=cache_dir, seed=1)
        trainer, _, _ = prepare_lm_trainer(config)
        clock = StepClock()
        trainer.add_callback(clock)
        stream = trainer.train_dataset
        iterator = iter(type(stream)(stream.corpora, stream.datasets, stream.config, stream.pad_token_id,
                                     stream.decoder_start_token_id))
        batches = [next(iterator) for _ in range(steps + warmup)]  # the batches the trainer sees
        trainable, total = trainable_parameter_count(trainer.model)
        trainer.train()
    queue.put({**rates(clock, batches, warmup), "rss": peak_rss_mb(), "trainable": trainable, "total": total,
               "batches": [{k: v.numpy() for k, v in b.items() if isinstance(v, torch.Tensor)} for b in batches]})


def padded_batches(batches: list[dict], seed: int = 1) -> list[dict]:
    """The examples of our `batches` as a plain recipe batches them: shuffled, our mean number of examples per batch,
    each batch right-padded to its longest example (labels -100 on padding); labels keep our convention."""
    rows = []
    for batch in batches:
        for ids, mask, labels in zip(batch["input_ids"], batch["attention_mask"], batch["labels"]):
            keep = mask.astype(bool)
            rows.append((ids[keep], labels[keep]))
    per_batch = max(1, round(len(rows) / len(batches)))
    order = np.random.default_rng(seed).permutation(len(rows))
    padded = []
    for start in range(0, len(rows) - per_batch + 1, per_batch):
        chunk = [rows[i] for i in order[start:start + per_batch]]
        width = max(len(ids) for ids, _ in chunk)
        input_ids = np.full((len(chunk), width), PAD_ID, dtype=np.int64)
        labels = np.full((len(chunk), width), -100, dtype=np.int64)
        mask = np.zeros((len(chunk), width), dtype=np.int64)
        for row, (ids, target) in enumerate(chunk):
            input_ids[row, :len(ids)], labels[row, :len(ids)], mask[row, :len(ids)] = ids, target, 1
        padded.append({"input_ids": input_ids, "attention_mask": mask, "labels": labels})
    return padded


def plain(model_dir: str, batches: list[dict], warmup: int, lora_rank: int, queue) -> None:
    """transformers.Trainer + PEFT LoRA, the model's own (shifting) loss on the same batches."""
    torch.set_num_threads(1)
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, Trainer, TrainingArguments

    def unshifted(batch: dict) -> dict:  # our labels say what each position predicts; HF models shift themselves
        labels = torch.full_like(batch["labels"], -100)
        labels[:, 1:] = batch["labels"][:, :-1]
        return {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"], "labels": labels}

    batches = [unshifted({k: torch.from_numpy(v) for k, v in b.items()}) for b in batches]

    class Batches(torch.utils.data.Dataset):
        def __len__(self):
            return len(batches)

        def __getitem__(self, index):
            return batches[index]

    model = AutoModelForCausalLM.from_pretrained(model_dir)
    model = get_peft_model(model, LoraConfig(task_type="CAUSAL_LM", r=lora_rank, lora_alpha=2 * lora_rank,
                                             target_modules=TARGETS))
    clock = StepClock()
    with tempfile.TemporaryDirectory() as tmp:
        args = TrainingArguments(
            output_dir=tmp, max_steps=len(batches), learning_rate=1e-4, lr_scheduler_type="constant",
            per_device_train_batch_size=1, logging_steps=100_000, save_strategy="no", eval_strategy="no",
            report_to="none", disable_tqdm=True, use_cpu=True, remove_unused_columns=False, seed=1,
            train_sampling_strategy="sequential")
        Trainer(model=model, args=args, train_dataset=Batches(), data_collator=lambda items: items[0],
                callbacks=[clock]).train()
    queue.put({**rates(clock, batches, warmup), "rss": peak_rss_mb()})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=1024, help="tokens per batch")
    parser.add_argument("--lora-rank", type=int, default=16)
    args = parser.parse_args()

    runs: dict[str, list[dict]] = {"full": [], "lora": [], "plain": [], "same": []}
    with tempfile.TemporaryDirectory() as root:
        cache = str(Path(root) / "cache")
        model = Path(root) / "llama-small"
        build_model(model)
        data = Path(root) / "data"
        prepare_data(data)
        for _ in range(args.repeats):
            runs["full"].append(in_child(ours, str(model), str(data), cache, args.steps, args.warmup,
                                         args.batch_size, 0))
            runs["lora"].append(in_child(ours, str(model), str(data), cache, args.steps, args.warmup,
                                         args.batch_size, args.lora_rank))
            ours_batches = runs["lora"][-1]["batches"]
            runs["plain"].append(in_child(plain, str(model), padded_batches(ours_batches), args.warmup,
                                          args.lora_rank))
            runs["same"].append(in_child(plain, str(model), ours_batches, args.warmup, args.lora_rank))
            print(" | ".join(f"{name} {r[-1]['tok_s']:,.0f} tgt tok/s, {r[-1]['cpu_per_ktok']:.2f} CPU s/1k tok "
                             f"({r[-1]['rss']:,.0f} MiB)" for name, r in runs.items()),
                  f"| load average {os.getloadavg()[0]:.1f}", flush=True)
    ratios = [a["tok_s"] / b["tok_s"] for a, b in zip(runs["lora"], runs["plain"])]
    cpu_ratios = [b["cpu_per_ktok"] / a["cpu_per_ktok"] for a, b in zip(runs["lora"], runs["plain"])]
    same_ratios = [a["tok_s"] / b["tok_s"] for a, b in zip(runs["lora"], runs["same"])]
    same_cpu_ratios = [b["cpu_per_ktok"] / a["cpu_per_ktok"] for a, b in zip(runs["lora"], runs["same"])]
    memory = [a["rss"] / b["rss"] for a, b in zip(runs["lora"], runs["full"])]
    ratio, memory_ratio = statistics.median(ratios), statistics.median(memory)
    names = {"full": "ours, full fine-tuning", "lora": f"ours, LoRA rank {args.lora_rank}",
             "plain": f"transformers Trainer + PEFT LoRA rank {args.lora_rank} (shuffled, padded batches)",
             "same": f"transformers Trainer + PEFT LoRA rank {args.lora_rank}, fed our batches"}
    rows = []
    for key, name in names.items():
        trainable = runs["full" if key == "full" else "lora"][0]
        rows.append([name, median_range([r["tok_s"] for r in runs[key]], "{:,.0f}"),
                     median_range([r["rss"] for r in runs[key]], "{:,.0f}"),
                     f"{trainable['trainable']:,} of {trainable['total']:,}"])
    rows.append(["ours LoRA / plain LoRA throughput (median of pairs)", median_range(ratios), "", ""])
    rows.append(["ours LoRA / plain LoRA, by CPU time per target token (median of pairs)", median_range(cpu_ratios),
                 "", ""])
    rows.append(["ours LoRA / plain LoRA fed our batches (step overhead alone)", median_range(same_ratios), "", ""])
    rows.append(["ours LoRA / plain LoRA fed our batches, by CPU time", median_range(same_cpu_ratios), "", ""])
    rows.append(["ours LoRA / ours full peak RSS (median of pairs)", "", median_range(memory), ""])
    table = markdown_table(["run", "target tokens/s, median (min-max)", "peak RSS MiB, median (min-max)",
                            "trainable parameters"], rows)
    notes = (f"{args.repeats} alternating runs of each, each a fresh process with 1 torch thread: {args.steps} timed "
             f"steps after {args.warmup} warm-up steps, batches of {args.batch_size} tokens of en->es prompts, "
             "float32. Both plain runs get their batches ready-made (no collation in the timed steps), ours builds them "
             "in the loop. Our runs' RSS includes the tokenized "
             "corpus (3,000 pairs) and the validation set, which the plain loop does not hold.")
    print(table, notes, sep="\n\n")
    update_results("LLM fine-tuning", table + "\n\n" + notes,
                   command=f"python benchmarks/bench_lm.py --steps {args.steps} --warmup {args.warmup} --repeats "
                   f"{args.repeats} --batch-size {args.batch_size}")
    record_bars("LLM fine-tuning", [
        ("LoRA fine-tuning throughput vs transformers Trainer + PEFT", ">= 1.0x",
         f"{ratio:.2f}x (pairs {min(ratios):.2f}-{max(ratios):.2f}; by CPU time {statistics.median(cpu_ratios):.2f}x; "
         f"fed our batches {statistics.median(same_ratios):.2f}x, by CPU time "
         f"{statistics.median(same_cpu_ratios):.2f}x)", ratio >= 1.0),
        ("LoRA peak RSS / full fine-tuning peak RSS", "< 1.0x", f"{memory_ratio:.2f}x", memory_ratio < 1.0),
    ])
    print(machine_info())


if __name__ == "__main__":
    main()
