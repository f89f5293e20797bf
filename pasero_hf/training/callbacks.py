"""Trainer callbacks: clean stop on SIGINT/SIGTERM or wall-clock budget, log lines, and the training-curve plot."""

from __future__ import annotations

import logging
import math
import os
import signal
import time
from pathlib import Path

import torch
import torch.distributed as dist
from tqdm.auto import tqdm
from transformers import TrainerCallback
from transformers.trainer_callback import ProgressCallback

logger = logging.getLogger("pasero_hf.training")


class StopCallback(TrainerCallback):
    """Stops training after the current step, saving a checkpoint, on SIGINT/SIGTERM or when the time budget is spent.

    Every rank all-reduces its (signal, timeout) flags after each step, so all ranks stop after the same step even
    when the signal reached only some of them. A second signal of the same kind kills the process as usual.
    On timeout, a final validation runs too, so that `model_best` accounts for the last weights.
    """

    def __init__(self, max_time_minutes: float | None = None):
        self.max_seconds = None if max_time_minutes is None else max_time_minutes * 60
        self.signal_received: int | None = None
        self.stop_reason: str | None = None
        self._previous_handlers: dict[int, object] = {}
        self._start = time.monotonic()

    def _handle(self, signum, frame) -> None:
        self.signal_received = signum
        # A second Ctrl-C must still work when a step hangs.
        signal.signal(signum, self._previous_handlers.get(signum, signal.SIG_DFL))
        logger.warning("received %s: stopping after this step and saving a checkpoint", signal.Signals(signum).name)

    def on_train_begin(self, args, state, control, **kwargs):
        self._start = time.monotonic()
        for signum in (signal.SIGINT, signal.SIGTERM):
            try:
                self._previous_handlers[signum] = signal.signal(signum, self._handle)
            except ValueError:  # not the main thread (e.g. a notebook worker): signals stay as they are
                pass

    def on_train_end(self, args, state, control, **kwargs):
        for signum, handler in self._previous_handlers.items():
            signal.signal(signum, handler)
        self._previous_handlers.clear()

    def on_step_end(self, args, state, control, **kwargs):
        timeout = self.max_seconds is not None and time.monotonic() - self._start >= self.max_seconds
        flags = torch.tensor([float(self.signal_received is not None), float(timeout)])
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            # gloo and nccl both reduce CPU/GPU tensors of the default device; keep it on the args' device
            flags = flags.to(args.device)
            dist.all_reduce(flags, op=dist.ReduceOp.MAX)
        if flags[0] > 0:
            self.stop_reason = "signal"
        elif flags[1] > 0:
            self.stop_reason = "time budget"
            control.should_evaluate = True
        if self.stop_reason:
            logger.info("stopping at step %d (%s)", state.global_step, self.stop_reason)
            control.should_save = True
            control.should_training_stop = True
        return control


class LogLinesCallback(TrainerCallback):
    """Pasero-style log lines (`step 100 | loss 5.123 | ...`) through the `pasero_hf.training` logger (train.log)."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        kind = "valid" if any(k.startswith("eval_") for k in logs) else "train"
        parts = [f"step {state.global_step}"]
        for key, value in logs.items():
            if key in ("epoch",):
                continue
            parts.append(f"{key} {format_value(value, key)}")
        logger.info("%s | %s", kind, " | ".join(parts))


def format_value(value, key: str = "") -> str:
    """A log value: BLEU and chrF with 2 decimals (as sacrebleu prints them), other floats with 4."""
    if isinstance(value, float):
        if key.endswith(("bleu", "chrf")):
            return f"{value:.2f}"
        if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e5):
            return f"{value:.4e}"
        return f"{value:.4f}".rstrip("0").rstrip(".") if not math.isnan(value) else "nan"
    return str(value)


class QuietProgressCallback(ProgressCallback):
    """The Hugging Face progress bar, without printing every log dict under it (LogLinesCallback prints lines).

    With a time budget (`max_seconds`), the bar counts the seconds spent of it, the step as a postfix: a bar of steps
    would show the step cap and an ETA that mean nothing when time ends the run.
    """

    def __init__(self, max_seconds: float | None = None):
        super().__init__()
        self.max_seconds = max_seconds
        self._start = time.monotonic()

    def on_train_begin(self, args, state, control, **kwargs):
        if self.max_seconds is None:
            return super().on_train_begin(args, state, control, **kwargs)
        self._start = time.monotonic()
        self.current_step = state.global_step
        if state.is_world_process_zero:
            self.training_bar = tqdm(total=math.ceil(self.max_seconds), unit="s", desc="time budget",
                                     dynamic_ncols=True)

    def on_step_end(self, args, state, control, **kwargs):
        if self.max_seconds is None:
            return super().on_step_end(args, state, control, **kwargs)
        if state.is_world_process_zero:
            self.training_bar.n = min(int(time.monotonic() - self._start), self.training_bar.total)
            self.training_bar.set_postfix_str(f"step {state.global_step}/{state.max_steps}")

    def on_log(self, args, state, control, logs=None, **kwargs):
        return


class TrainingCurveCallback(TrainerCallback):
    """Writes MODEL_DIR/training_curve.png: training loss and validation chrF (and BLEU) over steps."""

    def __init__(self, output_path: str | os.PathLike, metric: str = "chrf"):
        self.output_path = Path(output_path)
        self.metric = metric

    def _plot(self, state) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        train = [(e["step"], e["loss"]) for e in state.log_history if "loss" in e and "eval_loss" not in e]
        valid = [(e["step"], e[f"eval_{self.metric}"]) for e in state.log_history if f"eval_{self.metric}" in e]
        if not train and not valid:
            return
        fig, ax_loss = plt.subplots(figsize=(7, 4))
        if train:
            ax_loss.plot(*zip(*train), color="tab:blue", label="train loss")
        ax_loss.set_xlabel("step")
        ax_loss.set_ylabel("training loss (nats)", color="tab:blue")
        if valid:
            ax_metric = ax_loss.twinx()
            ax_metric.plot(*zip(*valid), color="tab:orange", marker="o", label=f"valid {self.metric}")
            ax_metric.set_ylabel(f"valid {self.metric}", color="tab:orange")
        fig.tight_layout()
        tmp = self.output_path.with_name(f".{self.output_path.stem}.{os.getpid()}.tmp.png")
        fig.savefig(tmp, dpi=100)
        plt.close(fig)
        os.replace(tmp, self.output_path)

    def on_evaluate(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            self._plot(state)

    def on_train_end(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            self._plot(state)
