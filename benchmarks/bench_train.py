"""Training throughput (target tokens/s, one process, CPU float32) on the same batches of the Bible corpus:

- PaseroForConditionalGeneration (the `make demo` size: embed 256, 3+3 layers, FFN 1024, 8k BPE) through our
  PaseroSeq2SeqTrainer;
- M2M100ForConditionalGeneration of identical size through the plain Hugging Face Seq2SeqTrainer
  (label_smoothing_factor 0.1, its own loss);
- the data pipeline alone (batches/s of the token-based training stream, no model).

Both models train in this process, alternately, on the same pre-built batches, so the ratio holds on a busy machine.
With the original Pasero's source (`--pasero-src DIR` or `PASERO_SRC`, an extracted naver/pasero tree), both
toolkits also train this model end to end, each as its users run it, in two fresh processes run in lockstep (one
step of each in turn, never both at once): the original
`pasero-train` (its data worker process, its trainer) against our `pasero-train` path (`prepare_trainer` of the
recipe's config, our token stream and `PaseroSeq2SeqTrainer`), the same config (the original's
`pasero-bible-en-es` training.yaml: 7.4M parameters, batches of 2048 tokens, label smoothing 0.1, clip norm 1.0,
lr 1e-3 with 200 warm-up steps), the same Bible corpus and BPE, the same torch threads. Target tokens/s and CPU
seconds per 1,000 target tokens (the process and its data workers) over the steps after the warm-up.
Their training steps alone are also compared on the same batches, alternating in one process.

    python benchmarks/bench_train.py [--steps 20] [--warmup 5] [--repeats 3] [--threads 1 2] [--pasero-src DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from common import Baton, in_child, machine_info, markdown_table, median_range, peak_rss_mb, record_bars, update_results
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
from pasero_hf.models.onednn import onednn_linear_layers
from pasero_hf.models.pasero import PaseroConfig, PaseroForConditionalGeneration
from pasero_hf.tokenization.tokenization_pasero import PaseroTokenizer
from pasero_hf.training.dropout import fast_cpu_dropout
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


# The original `pasero-train`, run as its users run it, with a clock around its training steps: after each step,
# the time spent in steps so far (each step runs while this process holds the lockstep baton, and hands it to our
# trainer afterwards), the CPU time of the process and its data workers, and the target tokens of the batches drawn so far
# (the loss's targets: its `decoder_input` is BOS + target + EOS, and the target is that without the BOS; counting
# the BOS too overstated the original's throughput by one token per line, 3% here). Written to a JSON file at the end.
ORIGINAL_TRAIN = """
import json, os, sys, time
sys.path.insert(0, os.environ['BENCH_DIR'])
from common import Baton
sys.path.insert(0, sys.argv[1])
sys.path += sys.argv[6:]  # the original's own dependencies, after ours (which hold torch)
import psutil
import torch.optim.lr_scheduler as schedulers
# the original passes `verbose` to LRScheduler.__init__, which torch 2.13 no longer takes (it only printed the rate)
_init = schedulers.LRScheduler.__init__
schedulers.LRScheduler.__init__ = lambda self, optimizer, last_epoch=-1, verbose=None: _init(self, optimizer, last_epoch)
from pasero import training
config, model_dir, out, total = sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
records, tokens, held = [], [0], [0.0]
baton = Baton(os.environ.get('BENCH_BATON'), 'original', 'ours')

def tree_cpu():
    processes = [psutil.Process()] + psutil.Process().children(recursive=True)
    seconds = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
            seconds += times.user + times.system
        except psutil.Error:
            pass
    return seconds

def counting(iterator):
    for batch in iterator:
        if batch is not None:
            tokens[0] += int((batch['decoder_input'][:, 1:] != 1).sum())
        yield batch

step = training.Trainer.train_step
def timed_step(self, batch_iterator):
    if not hasattr(self, '_bench_iterator'):
        self._bench_iterator = counting(batch_iterator)
    baton.take()
    start = time.perf_counter()
    step(self, self._bench_iterator)
    held[0] += time.perf_counter() - start
    records.append((held[0], tree_cpu(), tokens[0]))
    baton.give()
    if len(records) == total:
        baton.take()  # our trainer's last step runs alone too (it goes second, and does not hand back)
        with open(out, 'w') as file:
            json.dump(records, file)
training.Trainer.train_step = timed_step
sys.argv = ['pasero-train', '-c', config, '--model-dir', model_dir, '--reset']
from cli.train import main
main()
"""


def original_config(data_dir: Path, steps: int, batch_size: int) -> dict:
    """The training.yaml of the original's pasero-bible-en-es fixture (its model, batches and optimisation), with
    no validation, logging or checkpoint inside the run."""
    return {
        "task": "translation", "arch": "transformer", "embed_dim": 256, "encoder_layers": 3, "decoder_layers": 3,
        "encoder_attention_heads": 4, "decoder_attention_heads": 4, "encoder_ffn_dim": 1024,
        "decoder_ffn_dim": 1024, "dropout": 0.1, "attention_dropout": 0.0, "shared_embeddings": True,
        "tied_output_projection": True, "label_smoothing": 0.1, "lr": 0.001, "warmup": 200, "clip_norm": 1.0,
        "data_dir": str(data_dir), "source_lang": "en", "target_lang": "es", "train_corpora": [{"paths": ["train"]}],
        "valid_corpora": [{"paths": ["valid"]}], "tokenizer": "pasero", "tokenizer_path": str(TOKENIZER / "bpecodes"),
        "dict": str(TOKENIZER / "dict.txt"), "batch_size": batch_size, "max_source_len": 256, "max_target_len": 256,
        "dataloader_workers": 1, "seed": 1, "max_steps": steps, "log_interval": 10 ** 6, "valid_interval": 10 ** 6,
        "save_interval": 10 ** 6, "keep_last": 1, "beam_size": 1, "dtype": "float32",
    }


def small_data_dir(directory: Path) -> Path:
    """The Bible training corpus and 8 validation lines (the end-of-run validation is not timed; keep it short)."""
    data = bible_en_es_dir()
    directory.mkdir()
    for lang in ("en", "es"):
        (directory / f"train.{lang}").symlink_to(data / f"train.{lang}")
        with open(data / f"valid.{lang}", encoding="utf-8") as file:
            (directory / f"valid.{lang}").write_text("".join(next(file) for _ in range(8)), encoding="utf-8")
    return directory


def rate(records: list, warmup: int) -> dict:
    """Target tokens/s and CPU seconds per 1,000 target tokens between the end of step `warmup` and the last step
    (records: time in steps so far, CPU seconds so far, target tokens so far)."""
    (t0, cpu0, tok0), (t1, cpu1, tok1) = records[warmup - 1], records[-1]
    return {"tok_s": (tok1 - tok0) / (t1 - t0), "cpu_per_ktok": 1000 * (cpu1 - cpu0) / (tok1 - tok0),
            "tokens_per_step": (tok1 - tok0) / (len(records) - warmup)}


def run_pair(pasero_src: str, pasero_deps: str | None, data_dir: Path, steps: int, warmup: int, batch_size: int,
             threads: int) -> tuple[dict, dict]:
    """The original `pasero-train` and ours, each in a fresh process, started together and run in lockstep: one
    training step of the original, then one of ours, and so on, never both at once. Each times only its own steps
    (data loading included), so both see the same machine, step by step. Returns (original's rate, ours)."""
    import yaml

    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "config.yaml"
        config.write_text(yaml.safe_dump(original_config(data_dir, warmup + steps, batch_size)))
        out = Path(tmp) / "steps.json"
        Baton.create(tmp, "original", "ours")
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
               "CUDA_VISIBLE_DEVICES": "", "BENCH_DIR": str(Path(__file__).parent), "BENCH_BATON": tmp}
        original = subprocess.Popen(
            [sys.executable, "-c", ORIGINAL_TRAIN, pasero_src, str(config), str(Path(tmp) / "model"), str(out),
             str(warmup + steps), *([pasero_deps] if pasero_deps else [])], cwd=tmp, env=env,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            ours = in_child(run_ours_end_to_end, str(data_dir), steps, warmup, batch_size, threads, tmp,
                            on_start=lambda: Baton.start(tmp, "original", "original", "ours"))
            _, stderr = original.communicate(timeout=600)
        finally:
            if original.poll() is None:
                original.kill()
        if original.returncode:
            raise RuntimeError(f"the original pasero-train failed:\n{stderr[-3000:]}")
        return rate(json.loads(out.read_text()), warmup), ours


class ProcessClock(TrainerCallback):
    """After every step: the time spent in steps so far (batch loading included: the turn starts when the previous
    step ends), CPU time of this process and its DataLoader workers, target tokens so far. With a baton, each step
    runs in this process's turn (it goes second)."""

    def __init__(self, batches: list[dict], baton: Baton):
        self.batches, self.baton = batches, baton
        self.records: list[tuple[float, float, int]] = []
        self.tokens, self.held, self.turn_start = 0, 0.0, 0.0

    def on_train_begin(self, args, state, control, **kwargs):
        self.baton.take()
        self.turn_start = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        import psutil

        self.held += time.perf_counter() - self.turn_start
        self.tokens += int((self.batches[len(self.records)]["labels"] != -100).sum())
        seconds = 0.0
        for process in [psutil.Process()] + psutil.Process().children(recursive=True):
            times = process.cpu_times()
            seconds += times.user + times.system
        self.records.append((self.held, seconds, self.tokens))
        self.baton.give()
        if len(self.records) < len(self.batches):
            self.baton.take()
            self.turn_start = time.perf_counter()


def our_trainer(data_dir: str, batch_size: int, max_steps: int, tmp: str):
    """`prepare_trainer` of the recipe's config, as our `pasero-train` builds it (no validation, logging or saving
    inside the run): (trainer, stop callback, resume point)."""
    from pasero_hf.training.config import load_training_config
    from pasero_hf.training.run import prepare_trainer

    config = load_training_config(
        config_files=[REPO / "recipes" / "configs" / "bible-en-es.yaml"], data_dir=data_dir,
        tokenizer_path=str(TOKENIZER / "bpecodes"), dict=str(TOKENIZER / "dict.txt"), batch_size=batch_size,
        max_steps=max_steps, max_time=None, valid_interval=10 ** 6, save_interval=10 ** 6, log_interval=10 ** 6,
        valid_max_lines=8, model_dir=str(Path(tmp) / "model"), cache_dir=str(Path(tmp) / "cache"), seed=1)
    return prepare_trainer(config)


def run_ours_end_to_end(data_dir: str, steps: int, warmup: int, batch_size: int, threads: int, baton_dir: str | None,
                        queue) -> None:
    """Our pasero-train path in this (fresh) process: `prepare_trainer` of the recipe's config, as the original's."""
    torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory() as tmp:
        trainer, _, _ = our_trainer(data_dir, batch_size, warmup + steps, tmp)
        stream = trainer.train_dataset
        iterator = iter(type(stream)(stream.corpora, stream.datasets, stream.config, stream.pad_token_id,
                                     stream.decoder_start_token_id))
        # the batches the trainer sees
        clock = ProcessClock([next(iterator) for _ in range(warmup + steps)], Baton(baton_dir, "ours", "original"))
        trainer.add_callback(clock)
        trainer.train()
    queue.put(rate(clock.records, warmup))


def same_batch_steps(pasero_src: str, pasero_deps: str | None, data_dir: str, batch_size: int, threads: int,
                     rounds: int, steps: int, queue) -> None:
    """Both toolkits' training steps (forward, loss, backward, clipping, optimizer) in this (fresh) process on the
    same batches, alternating in rounds of `steps` steps, the order reversed every round: machine-speed drift, which
    moves absolute figures by tens of percent on a shared host, then hits both alike. The original: its Transformer
    (loss included), its Adam and its gradient normalisation and clipping, as in its `Trainer.train_step`; ours: the
    model, `compute_loss` and optimizer that `prepare_trainer` builds, with the trainer's clipping. Puts
    {"original": [tok/s per round], "ours": [...]}."""
    torch.set_num_threads(threads)
    sys.path.insert(0, pasero_src)
    sys.path += [pasero_deps] if pasero_deps else []
    import yaml
    from pasero import datasets, optimization, training  # noqa: F401  (registers the original's dataset types)
    from pasero.config import TrainingConfig, get_architecture, get_task_class

    with tempfile.TemporaryDirectory() as tmp:
        config_file = Path(tmp) / "config.yaml"
        config_file.write_text(yaml.safe_dump(original_config(Path(data_dir), 10 ** 6, batch_size)))
        argv, sys.argv = sys.argv, ["pasero-train", "-c", str(config_file), "--model-dir", str(Path(tmp) / "orig")]
        try:
            cfg = TrainingConfig()
        finally:
            sys.argv = argv
        cfg.dtype, cfg.amp = "float32", False
        task = get_task_class(cfg.task)(cfg.data_dir, cfg.task_cfg)
        task.setup_for_model(cfg.model_cfg)
        original = get_architecture(cfg.model_cfg)(cfg.model_cfg, cfg, task=task).train()
        original_optimizer = optimization.Adam(original.parameters(), lr=cfg.lr, betas=tuple(cfg.adam_betas),
                                               weight_decay=cfg.weight_decay)

        trainer, _, _ = our_trainer(data_dir, batch_size, 10 ** 6, tmp)
        ours = trainer.model.train()
        ours_optimizer = trainer.create_optimizer()
        iterator = iter(trainer.train_dataset)
        batches = [next(iterator) for _ in range(steps)]

    def original_batch(batch: dict) -> dict:
        """The original's format: decoder_input is BOS + target + EOS (its loss shifts it), source lengths."""
        target = batch["labels"].masked_fill(batch["labels"] == -100, 1)
        decoder_input = torch.cat([batch["decoder_input_ids"][:, :1], target], dim=1)
        return {"encoder_input": batch["input_ids"], "encoder_input_length": batch["attention_mask"].sum(1),
                "decoder_input": decoder_input, "prompt_mask": torch.zeros_like(decoder_input, dtype=torch.bool),
                "meta": {}}

    def original_step(batch: dict) -> None:
        loss, logs = original(**batch)
        loss.backward()
        for param in original.parameters():  # its loss is a sum: the trainer divides the gradients by the tokens
            param.grad.mul_(1 / logs["num_tokens"])
        optimization.clip_grad_norm_(list(original.parameters()), cfg.clip_norm)
        original_optimizer.step()
        original_optimizer.zero_grad(set_to_none=True)

    def our_step(batch: dict) -> None:
        count = torch.tensor(int((batch["labels"] != -100).sum()))
        with onednn_linear_layers(ours, trainer.onednn), fast_cpu_dropout(ours, trainer.fast_dropout):  # as train()
            trainer.compute_loss(ours, batch, num_items_in_batch=count).backward()
        torch.nn.utils.clip_grad_norm_(ours.parameters(), trainer.args.max_grad_norm)
        ours_optimizer.step()
        ours_optimizer.zero_grad(set_to_none=True)

    systems = {"original": (original_step, [original_batch(b) for b in batches]), "ours": (our_step, batches)}
    tokens = sum(int((b["labels"] != -100).sum()) for b in batches)
    speeds = {name: [] for name in systems}
    for round_index in range(rounds + 1):  # round 0 warms both up
        for name in list(systems)[:: 1 if round_index % 2 else -1]:
            step, inputs = systems[name]
            start = time.perf_counter()
            for batch in inputs:
                step(batch)
            if round_index:
                speeds[name].append(tokens / (time.perf_counter() - start))
    queue.put(speeds)


def compare_with_original(pasero_src: str, pasero_deps: str | None, threads_list: list[int], repeats: int, steps: int,
                          warmup: int, batch_size: int, same_batch_rounds: int = 6) -> tuple[str, list]:
    """Alternating end-to-end runs of the original pasero-train and ours: (markdown, bars)."""
    rows, bars = [], []
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = small_data_dir(Path(tmp) / "data")
        for threads in threads_list:
            original, ours, loads = [], [], []
            for _ in range(repeats):
                loads.append(os.getloadavg()[0])
                pair = run_pair(pasero_src, pasero_deps, data_dir, steps, warmup, batch_size, threads)
                original.append(pair[0])
                ours.append(pair[1])
                print(f"{threads} thread(s): original Pasero {original[-1]['tok_s']:,.0f} tgt tok/s "
                      f"({original[-1]['cpu_per_ktok']:.3f} CPU s / 1k tok), ours {ours[-1]['tok_s']:,.0f} "
                      f"({ours[-1]['cpu_per_ktok']:.3f}), load average {loads[-1]:.1f}", flush=True)
            same = in_child(same_batch_steps, pasero_src, pasero_deps, str(data_dir), batch_size, threads,
                            same_batch_rounds, 10)
            same_ratios = [a / b for a, b in zip(same["ours"], same["original"])]
            print(f"{threads} thread(s), same batches in one process: original Pasero "
                  f"{statistics.median(same['original']):,.0f} tgt tok/s, ours {statistics.median(same['ours']):,.0f}",
                  flush=True)
            wall = [a["tok_s"] / b["tok_s"] for a, b in zip(ours, original)]
            cpu = [b["cpu_per_ktok"] / a["cpu_per_ktok"] for a, b in zip(ours, original)]
            rows.append([threads, median_range([r["tok_s"] for r in original], "{:,.0f}"),
                         median_range([r["tok_s"] for r in ours], "{:,.0f}"), median_range(wall), median_range(cpu),
                         f"{statistics.median(r['tokens_per_step'] for r in original):,.0f} / "
                         f"{statistics.median(r['tokens_per_step'] for r in ours):,.0f}",
                         median_range(loads, "{:.1f}"), median_range(same["original"], "{:,.0f}"),
                         median_range(same["ours"], "{:,.0f}"), median_range(same_ratios)])
            bars.append((f"training throughput, {threads} thread(s), vs the original Pasero", ">= 1.1x",
                         f"{statistics.median(wall):.2f}x wall, {statistics.median(cpu):.2f}x CPU time "
                         f"(pairs {min(wall):.2f}-{max(wall):.2f}); same batches in one process "
                         f"{statistics.median(same_ratios):.2f}x", statistics.median(wall) >= 1.1))
    table = markdown_table(
        ["torch threads", "original pasero-train (tgt tok/s)", "our pasero-train path (tgt tok/s)",
         "ours / original, wall (median of pairs)", "ours / original, CPU time per token (median of pairs)",
         "target tokens per step (original / ours)", "load average (1 min) at start",
         "same batches, one process: original (tgt tok/s)", "same batches: ours (tgt tok/s)",
         "same batches: ours / original (median of rounds)"], rows)
    return table, bars


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=20, help="timed training steps per run")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each trainer per thread count (alternating)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps before")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="torch thread counts to measure")
    parser.add_argument("--batch-size", type=int, default=2048, help="tokens per batch (as the demo)")
    parser.add_argument("--pasero-src", default=os.environ.get("PASERO_SRC") or None,
                        help="extracted naver/pasero tree: also train with the original pasero-train, end to end "
                             "(default: $PASERO_SRC)")
    parser.add_argument("--pasero-deps", default=os.environ.get("PASERO_DEPS") or None,
                        help="a directory of the original's extra dependencies (stopes and hydra-core, installed with "
                             "`pip install --target DIR`), searched after ours (default: $PASERO_DEPS)")
    parser.add_argument("--only-original", action="store_true",
                        help="only the end-to-end comparison with the original Pasero (needs --pasero-src)")
    args = parser.parse_args()
    if args.only_original and not args.pasero_src:
        parser.error("--only-original needs --pasero-src DIR (or PASERO_SRC)")
    if args.pasero_src:
        table, bars = compare_with_original(args.pasero_src, args.pasero_deps, args.threads, args.repeats, args.steps, args.warmup,
                                            args.batch_size)
        notes = (f"{args.repeats} pairs per thread count. In a pair, both trainers run end to end in fresh processes "
                 "started together, in lockstep: a step of the original `pasero-train`, then a step of ours, never "
                 "both at once, each timing its own steps (fetching the batch included), so that both see the same "
                 f"machine step by step. {args.steps} timed steps after {args.warmup} warm-up steps, batches of "
                 f"{args.batch_size} tokens, float32, the same torch threads for both (OMP_NUM_THREADS / "
                 "torch.set_num_threads). The original runs with its defaults for this config (one data worker "
                 "process, as in the fixture's training.yaml, which may also work during our turns); ours with its "
                 "defaults (batches built in the training process). CPU time counts the process and its workers "
                 "from the end of the warm-up to the end. 'Same batches, one process': both toolkits' training steps "
                 "(forward, loss, backward, clipping, optimizer; no data loading or trainer bookkeeping) on our "
                 "stream's batches, alternating in rounds of 10 steps in one process. On " + machine_info() + ".")
        print(table, notes, sep="\n\n")
        update_results("Training throughput vs the original Pasero", table + "\n\n" + notes,
                       command=f"python benchmarks/bench_train.py --pasero-src DIR --only-original --steps "
                               f"{args.steps} --warmup {args.warmup} --repeats {args.repeats} --threads "
                               + " ".join(map(str, args.threads)))
        record_bars("training vs the original Pasero", bars)
        if args.only_original:
            return

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
