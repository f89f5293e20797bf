"""Decoding speed: our TextGenerator against raw `model.generate`, a stock transformers model with the same weights,
and CTranslate2 (fp32 and int8), on the Bible test set with a converted original-Pasero model (the bundled tiny one
unless `--checkpoint` names another).

    python benchmarks/bench_decode.py                  # 344 lines, greedy and beam 5, 3 repetitions
    python benchmarks/bench_decode.py --lines 100 --repeats 2 --no-update
    python benchmarks/bench_decode.py --checkpoint PASERO_MODEL_DIR   # its own section of RESULTS.md
    python benchmarks/bench_decode.py --backends --threads 1 2        # our PyTorch path, our CTranslate2 backend
                                                                      # and raw CTranslate2, alternating rounds

Same run for all systems: each system is measured in its own fresh process (spawned one after the other), so that
its peak RSS is its own; inside it, one untimed warm-up then `--repeats` timed runs (median, min, max). Every system
gets the same length-sorted batches (`--batch-size` tokens, and TextGenerator's default cap on lines per batch, which
depends on the beam size) and the same output cap (100 tokens).

The stock transformers model is `MarianMTModel`, not `M2M100ForConditionalGeneration`: the fixture is a post-norm
fairseq-style Transformer and M2M100 is pre-norm, so M2M100 cannot compute the same function with these weights.
Marian is post-norm; its sinusoidal table is replaced by Pasero's (fairseq frequencies, positions from 2), which makes
it the same model. CTranslate2 models are written by `pasero-export` (`pasero_hf.export.export_ctranslate2`).

`--backends` compares, for each search and thread count: 'ours' (TextGenerator, PyTorch), 'ours-ct2-fp32' and
'ours-ct2-int8' (TextGenerator on a `pasero-export` directory: text to text), and 'raw-ct2-fp32'/'raw-ct2-int8'
(`Translator.translate_batch` alone, on the same batches of pre-tokenized input; tokenization and detokenization
untimed). On a shared machine single timings drift, so systems run in alternating rounds (each round: every system in
a fresh process, one after the other) and ratios are taken within a round (paired), then their median over rounds.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    in_child,
    markdown_table,
    median_range,
    peak_rss_mb,
    record_bars,
    summarize,
    time_repeats,
    update_results,
)

REPO = Path(__file__).resolve().parent.parent
FIXTURE = REPO / "tests" / "fixtures" / "pasero-tiny-en-es"
MAX_OUTPUT_LEN = 100
SYSTEMS = ("ours", "raw-generate", "marian-same-weights", "ct2-fp32", "ct2-int8")


def pasero_positions(config):
    """Pasero's sinusoidal table (fairseq frequencies) as Marian indexes it: row 0 is Pasero's first position."""
    from pasero_hf.models.pasero.modeling_pasero import PaseroSinusoidalPositions

    shift = config.positional_encoding_shift
    return PaseroSinusoidalPositions.table(config.encoder_max_len + shift, config.embed_dim)[shift:]


def load_marian(path: Path, pasero_config):
    """The saved Marian copy; transformers rebuilds Marian's own sinusoidal table on load, so put Pasero's back."""
    import torch
    from transformers import MarianMTModel

    marian = MarianMTModel.from_pretrained(path).eval()
    with torch.no_grad():
        for stack in (marian.model.encoder, marian.model.decoder):
            stack.embed_positions.weight.copy_(pasero_positions(pasero_config))
    return marian


def marian_copy(pasero_model):
    """A MarianMTModel computing the same function as a post-norm Pasero model (weights copied over)."""
    import torch
    from transformers import MarianConfig, MarianMTModel

    config = pasero_model.config
    if config.encoder_prenorm or config.decoder_prenorm or not config.shared_embeddings:
        raise ValueError("marian_copy expects a post-norm Pasero model with shared embeddings")
    max_len = config.encoder_max_len
    marian_config = MarianConfig(
        vocab_size=config.vocab_size, decoder_vocab_size=config.vocab_size, d_model=config.embed_dim,
        encoder_layers=config.encoder_layers, decoder_layers=config.decoder_layers,
        encoder_attention_heads=config.encoder_attention_heads, decoder_attention_heads=config.decoder_attention_heads,
        encoder_ffn_dim=config.encoder_ffn_dim, decoder_ffn_dim=config.decoder_ffn_dim,
        activation_function=config.activation_fn, max_position_embeddings=max_len, pad_token_id=config.pad_token_id,
        eos_token_id=config.eos_token_id, decoder_start_token_id=config.decoder_start_token_id,
        bos_token_id=config.bos_token_id, forced_eos_token_id=None, scale_embedding=True,
        share_encoder_decoder_embeddings=True, tie_word_embeddings=True, dropout=0.0,
    )
    marian = MarianMTModel(marian_config).eval()
    source = pasero_model.state_dict()
    target = marian.state_dict()
    with torch.no_grad():
        for name, value in source.items():
            if name.startswith("model.") and name in target:
                target[name].copy_(value)
        target["model.shared.weight"].copy_(source["model.encoder.embed_tokens.weight"])
        target["lm_head.weight"].copy_(source["model.encoder.embed_tokens.weight"])
        target["final_logits_bias"].zero_()
        for stack in ("encoder", "decoder"):
            target[f"model.{stack}.embed_positions.weight"].copy_(pasero_positions(config))
    missing = [name for name in target if "layers" in name and name not in source]
    if missing:
        raise ValueError(f"weights without a Pasero counterpart: {missing[:5]}")
    marian.load_state_dict(target)
    return marian


def prepare(workdir: Path, checkpoint: Path, lines: int, marian: bool, queue) -> None:
    """In a fresh process: convert the fixture, save its Marian copy and CTranslate2 exports; report the model
    directories and the source lines (the parent never loads torch, so children's peak RSS are their own)."""
    from transformers import AutoTokenizer

    from pasero_hf.data.sample_data import bible_en_es_dir
    from pasero_hf.models.pasero import PaseroForConditionalGeneration
    from pasero_hf.models.pasero.convert_pasero_checkpoint import convert_pasero_checkpoint

    paths = {"pasero": convert_pasero_checkpoint(checkpoint, workdir / "pasero")}
    pasero = PaseroForConditionalGeneration.from_pretrained(paths["pasero"]).eval()
    if marian:
        paths["marian"] = workdir / "marian"
        marian_copy(pasero).save_pretrained(paths["marian"])
        AutoTokenizer.from_pretrained(paths["pasero"]).save_pretrained(paths["marian"])
    try:
        from pasero_hf.export import export_ctranslate2

        for quantization in ("float32", "int8"):
            paths[f"ct2-{quantization}"] = export_ctranslate2(
                paths["pasero"], workdir / f"ct2-{quantization}", quantization=quantization
            )
    except Exception as error:  # reported in the table: CTranslate2 is optional
        print(f"CTranslate2 unavailable: {type(error).__name__}: {error}", file=sys.stderr)
    sources = (bible_en_es_dir() / "test.en").read_text(encoding="utf-8").splitlines()[:lines]
    paths["refs"] = bible_en_es_dir() / "test.es"
    config = pasero.config
    description = (
        f"embed {config.embed_dim}, {config.encoder_layers}+{config.decoder_layers} layers, FFN {config.encoder_ffn_dim}, "
        f"{pasero.num_parameters():,} parameters"
    )
    queue.put((paths, sources, description))


def run_system(system: str, paths: dict[str, Path], sources: list[str], beam_size: int, batch_size: int,
               threads: int, repeats: int, warmup: int, queue) -> None:
    """In a fresh process: load one system, time it, report outputs, timings and peak RSS."""
    import torch

    torch.set_num_threads(threads)
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    import pasero_hf.models  # noqa: F401  (registers the Pasero classes with the Auto classes)
    from pasero_hf.generation.batching import length_sorted_batches
    from pasero_hf.generation.decoding_options import DecodingOptions
    from pasero_hf.generation.text_generator import TextGenerator, lines_per_batch

    tokenizer = AutoTokenizer.from_pretrained(paths["pasero"])
    max_lines = lines_per_batch(DecodingOptions(beam_size=beam_size, batch_size=batch_size))

    def encode():
        """Every system starts from text, as TextGenerator does: tokenization and batching are timed."""
        source_ids = tokenizer(sources)["input_ids"]
        return source_ids, length_sorted_batches([len(ids) for ids in source_ids], batch_size, max_lines)

    if system == "ours":
        generator = TextGenerator.from_pretrained(
            paths["pasero"], beam_size=beam_size, batch_size=batch_size, max_output_len=MAX_OUTPUT_LEN
        )

        def decode():
            return [nbest[0]["detok"] for nbest in generator.decode(*sources)]
    elif system in ("raw-generate", "marian-same-weights"):
        if system == "raw-generate":
            model = AutoModelForSeq2SeqLM.from_pretrained(paths["pasero"]).eval()
        else:
            model = load_marian(paths["marian"], AutoModelForSeq2SeqLM.from_pretrained(paths["pasero"]).config)
        pad, eos = tokenizer.pad_token_id, tokenizer.eos_token_id

        def decode():
            outputs = [""] * len(sources)
            source_ids, batches = encode()
            with torch.inference_mode():
                for batch in batches:
                    width = max(len(source_ids[i]) for i in batch)
                    ids = torch.tensor([source_ids[i] + [pad] * (width - len(source_ids[i])) for i in batch])
                    generated = model.generate(
                        input_ids=ids, attention_mask=(ids != pad).long(), num_beams=beam_size, do_sample=False,
                        max_new_tokens=MAX_OUTPUT_LEN, early_stopping=True if beam_size > 1 else False,
                    )
                    for i, row in zip(batch, generated[:, 1:].tolist()):
                        row = row[: row.index(eos)] if eos in row else row
                        outputs[i] = tokenizer.decode(row, skip_special_tokens=True)
            return outputs
    elif system.startswith("ct2-"):
        import ctranslate2

        key = "ct2-float32" if system == "ct2-fp32" else "ct2-int8"
        if key not in paths:
            queue.put((system, None))
            return
        translator = ctranslate2.Translator(str(paths[key]), device="cpu", intra_threads=threads, inter_threads=1)

        def decode():
            outputs = [""] * len(sources)
            source_ids, batches = encode()
            source_tokens = [tokenizer.convert_ids_to_tokens(ids) for ids in source_ids]
            for batch in batches:
                results = translator.translate_batch(
                    [source_tokens[i] for i in batch], beam_size=beam_size, max_decoding_length=MAX_OUTPUT_LEN,
                    length_penalty=1.0,
                )
                for i, result in zip(batch, results):
                    ids = tokenizer.convert_tokens_to_ids(result.hypotheses[0])
                    outputs[i] = tokenizer.decode(ids, skip_special_tokens=True)
            return outputs
    else:
        raise ValueError(system)

    outputs = decode()
    times = time_repeats(decode, repeats=repeats, warmup=max(0, warmup - 1))
    target_tokens = sum(len(tokenizer(line, add_special_tokens=False)["input_ids"]) + 1 for line in outputs)
    queue.put((system, {"times": times, "outputs": outputs, "target_tokens": target_tokens, "rss": peak_rss_mb()}))


def decoding_bars(beam_size: int, results: dict[str, dict | None], lines: int) -> list[tuple]:
    """The issue's bars for one search: no overhead over raw generate, within 2x of CTranslate2 fp32, and identical
    greedy outputs for ours, raw generate and Marian."""
    def median(system: str) -> float | None:
        result = results.get(system)
        return statistics.median(result["times"]) if result else None

    def spread(system: str) -> str:
        return median_range(results[system]["times"]) + " s"

    ours, raw, ct2 = median("ours"), median("raw-generate"), median("ct2-fp32")
    search = "greedy" if beam_size == 1 else f"beam {beam_size}"
    bars = []
    if ours and raw:
        bars.append((f"decoding {search}: ours vs raw generate, same weights", ">= 1.0x",
                     f"{raw / ours:.2f}x (ours {spread('ours')}, raw {spread('raw-generate')})", raw / ours >= 1.0))
    if ours and ct2:
        bars.append((f"decoding {search}: CTranslate2 fp32 / ours (goal)", "<= 2.0x",
                     f"{ours / ct2:.2f}x (ours {spread('ours')}, CTranslate2 {spread('ct2-fp32')})", ours / ct2 <= 2.0))
    if beam_size == 1 and results.get("ours"):
        others = [system for system in ("raw-generate", "marian-same-weights") if results.get(system)]
        same = {
            system: sum(a == b for a, b in zip(results[system]["outputs"], results["ours"]["outputs"]))
            for system in others
        }
        bars.append(("greedy outputs identical: ours, raw generate, Marian", f"{lines}/{lines}",
                     ", ".join(f"{system} {count}/{lines}" for system, count in same.items()) or "not measured",
                     all(count == lines for count in same.values()) if same else None))
    return bars


def measure(system, paths, sources, beam_size, args) -> dict | None:
    _, result = in_child(
        run_system, system, paths, sources, beam_size, args.batch_size, args.threads, args.repeats, args.warmup
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", type=Path, default=FIXTURE,
                        help="original Pasero checkpoint directory, en-es (default: the bundled tiny fixture)")
    parser.add_argument("--lines", type=int, default=344, help="Bible test lines to decode (344 = all)")
    parser.add_argument("--beam-sizes", type=int, nargs="+", default=[1, 5])
    parser.add_argument("--batch-size", type=int, default=4096, help="tokens per batch")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs (--backends: per system and round)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, nargs="+", default=[1],
                        help="torch / CTranslate2 threads per system (several: --backends only)")
    parser.add_argument("--systems", nargs="+", default=list(SYSTEMS), choices=SYSTEMS)
    parser.add_argument("--backends", action="store_true",
                        help="ours (PyTorch) vs our CTranslate2 backend vs raw CTranslate2, in alternating rounds")
    parser.add_argument("--rounds", type=int, default=3, help="--backends: alternating rounds")
    parser.add_argument("--no-update", action="store_true", help="print the table without updating RESULTS.md")
    args = parser.parse_args()
    if args.backends:
        return backends_main(args)
    if len(args.threads) != 1:
        parser.error("several --threads need --backends")
    args.threads = args.threads[0]

    rows, bars = [], []
    with tempfile.TemporaryDirectory() as workdir:
        paths, sources, description = in_child(prepare, Path(workdir), args.checkpoint, args.lines, True)
        for beam_size in args.beam_sizes:
            results = {system: measure(system, paths, sources, beam_size, args) for system in args.systems}
            bars += decoding_bars(beam_size, results, len(sources))
            baseline = results.get("ours")
            for system, result in results.items():
                if result is None:
                    rows.append([f"beam {beam_size}", system, "n/a", "", "", "", "", ""])
                    continue
                stats = summarize(result["times"])
                identical = (
                    sum(a == b for a, b in zip(result["outputs"], baseline["outputs"])) if baseline else 0
                )
                speed = len(sources) / stats["median"]
                ratio = (summarize(baseline["times"])["median"] / stats["median"]) if baseline else float("nan")
                rows.append([
                    f"beam {beam_size}", system, median_range(result["times"]),
                    speed, result["target_tokens"] / stats["median"], f"{ratio:.2f}x", result["rss"],
                    f"{identical}/{len(sources)}",
                ])
    headers = ["search", "system", "seconds median (min-max)", "sentences/s", "target tokens/s",
               "speed vs ours", "peak RSS MiB", "outputs = ours"]
    table = markdown_table(headers, rows)
    notes = (
        f"{len(sources)} Bible test lines, `{args.checkpoint.name}` converted ({description}), batches of "
        f"{args.batch_size} tokens and at most TextGenerator's default lines per batch (which caps lines x beam "
        f"size) for every system, max {MAX_OUTPUT_LEN} output tokens, {args.threads} thread(s) per system, "
        f"{args.repeats} timed runs after {args.warmup} warm-up. Every system goes from text to text (tokenization, "
        "batching and detokenization are timed) and, as by default, returns no per-token scores (greedy search then "
        "skips the log-softmax). Each system runs in its own process (peak RSS is its own: imports, model, "
        "decoding). 'ours': TextGenerator with its defaults (float32 linear layers through oneDNN on CPU). "
        "'outputs = ours': lines whose best output equals ours (ours = the original pasero-decode's). "
        "marian-same-weights: the same weights in transformers' MarianMTModel (post-norm, like the fixture)."
    )
    print(table)
    print(notes)
    if not args.no_update:
        section = "decoding" if args.checkpoint == FIXTURE else f"decoding, {args.checkpoint.name}"
        update_results(section, table + "\n\n" + notes, command="python benchmarks/bench_decode.py " +
                       " ".join(sys.argv[1:]))
        record_bars(section, bars)


# ---------------------------------------------------------------------------------------------------------------------
# --backends: ours (PyTorch), our CTranslate2 backend, raw CTranslate2

BACKEND_SYSTEMS = ("ours", "ours-ct2-fp32", "ours-ct2-int8", "raw-ct2-fp32", "raw-ct2-int8")


def run_backend_system(system: str, paths: dict[str, Path], sources: list[str], beam_size: int, batch_size: int,
                       threads: int, timed: int, queue) -> None:
    """In a fresh process: one warm-up and `timed` runs of one system (the fastest is reported, in wall-clock and in
    CPU seconds of the process: on a shared machine, CPU time is what other jobs disturb least)."""
    import time

    import torch

    torch.set_num_threads(threads)
    import pasero_hf.models  # noqa: F401  (registers the Auto classes)
    from pasero_hf.generation.batching import length_sorted_batches
    from pasero_hf.generation.decoding_options import DecodingOptions
    from pasero_hf.generation.text_generator import TextGenerator, lines_per_batch

    quantization = "float32" if system.endswith("fp32") else "int8"
    options = dict(beam_size=beam_size, batch_size=batch_size, max_output_len=MAX_OUTPUT_LEN)
    if system.startswith("ours"):
        path = paths["pasero"] if system == "ours" else paths[f"ct2-{quantization}"]
        generator = TextGenerator.from_pretrained(path, **options)

        def decode():
            return [nbest[0]["detok"] for nbest in generator.decode(*sources)]

        outputs = decode()
    else:
        import ctranslate2
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(paths["pasero"])
        translator = ctranslate2.Translator(str(paths[f"ct2-{quantization}"]), device="cpu", intra_threads=threads,
                                            inter_threads=1)
        source_ids = tokenizer(sources)["input_ids"]
        source_tokens = [tokenizer.convert_ids_to_tokens(ids) for ids in source_ids]
        max_lines = lines_per_batch(DecodingOptions(beam_size=beam_size, batch_size=batch_size))
        batches = length_sorted_batches([len(ids) for ids in source_ids], batch_size, max_lines)
        translated: dict[int, list[str]] = {}

        def decode():
            for batch in batches:
                results = translator.translate_batch(
                    [source_tokens[i] for i in batch], beam_size=beam_size, max_decoding_length=MAX_OUTPUT_LEN,
                    max_input_length=0,
                )
                translated.update((i, result.hypotheses[0]) for i, result in zip(batch, results))

        decode()
        outputs = [tokenizer.decode(tokenizer.convert_tokens_to_ids(translated[i]), skip_special_tokens=True)
                   for i in range(len(sources))]
    times, cpu_times = [], []
    for _ in range(timed):
        start, cpu_start = time.perf_counter(), time.process_time()
        decode()
        times.append(time.perf_counter() - start)
        cpu_times.append(time.process_time() - cpu_start)
    queue.put({"time": min(times), "cpu": min(cpu_times), "outputs": outputs, "rss": peak_rss_mb(),
               "load": os.getloadavg()[0]})


def backends_main(args) -> None:
    from pasero_hf.metrics import corpus_scores

    sections = []
    bars = []
    with tempfile.TemporaryDirectory() as workdir:
        paths, sources, description = in_child(prepare, Path(workdir), args.checkpoint, args.lines, False)
        refs = Path(paths["refs"]).read_text(encoding="utf-8").splitlines()[: len(sources)]
        rows = []
        loads: list[float] = []  # 1-minute load average as each system finished
        for threads in args.threads:
            for beam_size in args.beam_sizes:
                runs: dict[str, list[dict]] = {system: [] for system in BACKEND_SYSTEMS}
                for round_index in range(args.rounds):
                    # the order alternates between rounds, so that no system always runs first (or last)
                    order = BACKEND_SYSTEMS if round_index % 2 == 0 else BACKEND_SYSTEMS[::-1]
                    for system in order:
                        runs[system].append(in_child(run_backend_system, system, paths, sources, beam_size,
                                                     args.batch_size, threads, args.repeats))
                    print(f"threads {threads}, beam {beam_size}: round {round_index + 1}/{args.rounds} done",
                          file=sys.stderr, flush=True)
                loads += [result["load"] for results in runs.values() for result in results]
                rows += backend_rows(runs, threads, beam_size, sources, refs, corpus_scores)
                bars += backend_bars(runs, threads, beam_size, len(sources), corpus_scores, refs)
        headers = ["threads", "search", "system", "seconds median (min-max)", "sentences/s", "speed vs ours",
                   "CPU-time speed vs ours", "paired speed vs raw CT2 (same type)",
                   "paired CPU-time speed vs raw CT2", "peak RSS MiB", "outputs = ours", "BLEU", "chrF"]
        sections.append(markdown_table(headers, rows))
    notes = (
        f"{len(sources)} Bible test lines, `{args.checkpoint.name}` converted ({description}); batches of "
        f"{args.batch_size} tokens and at most TextGenerator's default lines per batch for every system, max "
        f"{MAX_OUTPUT_LEN} output tokens, no scores requested. {args.rounds} alternating rounds: in each, every "
        f"system runs in a fresh process (peak RSS is its own), one untimed warm-up then the fastest of "
        f"{args.repeats} timed run(s), in the reverse order every other round; 'paired speed vs raw CT2' is raw time / "
        "system time within each round (median, min-max over rounds), against the raw engine of the same weight type, "
        "in wall-clock and in CPU seconds of the process. 'ours-ct2-*': TextGenerator on a `pasero-export` "
        "directory (text to text: tokenization, batching, detokenization and hypothesis building are timed); "
        "'raw-ct2-*': `Translator.translate_batch` alone on the same pre-tokenized batches. 'outputs = ours': lines "
        "equal to the PyTorch path's (= the original pasero-decode's). Load average (1 min) while it ran: "
        f"{min(loads):.1f}-{max(loads):.1f} on {os.cpu_count()} CPUs: above the thread count, other jobs shared "
        "the cores, and absolute times are noisy; the paired ratios, CPU time's above all, much less so."
    )
    text = "\n\n".join(sections) + "\n\n" + notes
    print(text)
    if not args.no_update:
        section = "decoding backends" + ("" if args.checkpoint == FIXTURE else f", {args.checkpoint.name}")
        update_results(section, text, command="python benchmarks/bench_decode.py " + " ".join(sys.argv[1:]))
        record_bars(section, bars)


def _paired(runs, system, baseline, key: str = "time") -> list[float]:
    """Per round, the baseline's time / the system's (`key`: "time" wall-clock, "cpu" CPU seconds)."""
    return [b[key] / a[key] for a, b in zip(runs[system], runs[baseline])]


def backend_rows(runs, threads, beam_size, sources, refs, corpus_scores) -> list[list]:
    rows = []
    ours = runs["ours"]
    for system, results in runs.items():
        times = [result["time"] for result in results]
        outputs = results[0]["outputs"]
        raw = "raw-ct2-" + system.rsplit("-", 1)[-1] if system.startswith("ours-ct2") else None
        paired = median_range(_paired(runs, system, raw)) + "x" if raw else ""
        paired_cpu = median_range(_paired(runs, system, raw, "cpu")) + "x" if raw else ""
        scores = corpus_scores(outputs, refs)
        rows.append([
            threads, "greedy" if beam_size == 1 else f"beam {beam_size}", system, median_range(times),
            len(sources) / statistics.median(times), f"{statistics.median(_paired(runs, system, 'ours')):.2f}x",
            f"{statistics.median(_paired(runs, system, 'ours', 'cpu')):.2f}x", paired, paired_cpu,
            max(result["rss"] for result in results),
            f"{sum(a == b for a, b in zip(outputs, ours[0]['outputs']))}/{len(sources)}",
            f"{scores['bleu']:.2f}", f"{scores['chrf']:.2f}",
        ])
    return rows


def backend_bars(runs, threads, beam_size, lines, corpus_scores, refs) -> list[tuple]:
    search = "greedy" if beam_size == 1 else f"beam {beam_size}"
    bars = []
    for kind in ("fp32", "int8"):
        ratios = _paired(runs, f"ours-ct2-{kind}", f"raw-ct2-{kind}")
        cpu = _paired(runs, f"ours-ct2-{kind}", f"raw-ct2-{kind}", "cpu")
        median = statistics.median(ratios)
        bars.append((f"{search}, {threads} thread(s): our CTranslate2 backend ({kind}) vs raw translate_batch",
                     ">= 0.9x", f"{median:.2f}x wall (paired, {median_range(ratios)}); "
                     f"{statistics.median(cpu):.2f}x CPU time", median >= 0.9))
    ratios = _paired(runs, "raw-ct2-fp32", "ours")  # ours time / raw CT2 time
    cpu = _paired(runs, "raw-ct2-fp32", "ours", "cpu")
    median = statistics.median(ratios)
    bars.append((f"{search}, {threads} thread(s): PyTorch path time / CTranslate2 fp32", "<= 1.25x",
                 f"{median:.2f}x wall (paired, {median_range(ratios)}); {statistics.median(cpu):.2f}x CPU time",
                 median <= 1.25))
    ours, fp32 = runs["ours"][0]["outputs"], runs["ours-ct2-fp32"][0]["outputs"]
    same = sum(a == b for a, b in zip(ours, fp32))
    if beam_size == 1:
        bars.append((f"greedy, {threads} thread(s): CTranslate2 fp32 outputs = PyTorch", f"{lines}/{lines}",
                     f"{same}/{lines}", same == lines))
    chrf = {kind: corpus_scores(runs[f"ours-ct2-{kind}"][0]["outputs"], refs)["chrf"] for kind in ("fp32", "int8")}
    delta = chrf["int8"] - chrf["fp32"]
    bars.append((f"{search}, {threads} thread(s): int8 chrF vs fp32", "within 0.5",
                 f"{delta:+.2f} ({chrf['int8']:.2f} vs {chrf['fp32']:.2f})", abs(delta) <= 0.5))
    return bars


if __name__ == "__main__":
    main()
