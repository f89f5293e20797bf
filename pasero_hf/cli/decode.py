"""`pasero-decode`: translate files or standard input with a model directory, optionally scoring BLEU and chrF.

Examples:
    pasero-decode models/bible-en-es -i test.en -r test.es -o test.out.es
    pasero-decode models/nllb -l eng_Latn-spa_Latn eng_Latn-fra_Latn -e data/flores/dev -o dev.{pair}.out
    pasero-decode models/bible-en-es -s en -t es --buffer-size 1        # interactive, line by line
    pasero-decode models/whisper-st -i clips.tsv --task translate -s fr -t en   # audio: a manifest or audio files
    pasero-decode models/llm-fr-en/model_best -s fr -t en -i test.fr    # a causal LM fine-tuned on prompts
    pasero-decode models/chat/model_best --chat                         # talk to a dialogue model (history kept)
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
from collections.abc import Sequence
from typing import Any

import yaml

logger = logging.getLogger("pasero_hf.decode")
# In interactive decoding (standard input, line by line), "!beam_size=1" changes a decoding option.
_OPTION_COMMAND = re.compile(r"!\s*(?P<name>\w+)\s*=\s*(?P<value>\S+)\s*")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pasero-decode",
        description="Decode (translate) files or standard input with a Hugging Face or converted Pasero model. "
        "Outputs are written in input order; with references, BLEU and chrF are printed at the end (on stderr).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="File names in -i/-r/-o/-e may contain {src}, {tgt} and {pair} (= {src}-{tgt}), filled in for each "
        "language pair. Languages are inferred from the extensions of -i (source) and -r (target) files when not given.",
    )
    parser.add_argument("model", help="model directory (config.json, weights, tokenizer; see pasero-convert), a "
                        "training run's directory (its model_best, else model_last) or a Hub repo id (user/name)")
    parser.add_argument("--ckpt", metavar="NAME", help="model of the training run's directory to load "
                        "(model_last, checkpoint-2000...; default: model_best, else model_last)")
    parser.add_argument("--revision", help="with a Hub repo id: branch, tag or commit (default: main)")
    files = parser.add_argument_group("files")
    files.add_argument("-i", "--input", nargs="+", metavar="FILE", help="input files (default: standard input)")
    files.add_argument("-r", "--reference", nargs="+", metavar="FILE", help="reference files: BLEU/chrF are computed")
    files.add_argument("-e", "--eval-corpus", nargs="+", metavar="PREFIX",
                       help="shorthand for -i PREFIX.{src} -r PREFIX.{tgt}")
    files.add_argument("-o", "--output", nargs="+", metavar="FILE", help="output files (default: standard output)")
    langs = parser.add_argument_group("languages")
    langs.add_argument("-s", "--source-lang", nargs="+", metavar="LANG", help="source language(s)")
    langs.add_argument("-t", "--target-lang", nargs="+", metavar="LANG", help="target language(s)")
    langs.add_argument("-l", "--lang-pairs", nargs="+", metavar="SRC-TGT", help="language pairs, e.g. en-fr de-fr")
    langs.add_argument("--domain", help="domain of the inputs (selects domain adapters)")
    langs.add_argument("--task", choices=("translate", "transcribe"),
                       help="speech models (Whisper), audio inputs (-i clips.tsv or a.wav b.flac c.mp3): translate or "
                       "transcribe the speech of -s LANG (default: transcribe when -t is -s or not given)")
    batching = parser.add_argument_group("batching")
    batching.add_argument("--buffer-size", type=int, default=100,
                          help="lines read at once, then sorted by length and batched (1: interactive, line by line; "
                          "on standard input, a line '!beam_size=1' then changes a decoding option)")
    batching.add_argument("--batch-size", type=int, help="maximum tokens per batch, padding included (default 4096)")
    batching.add_argument("--lines-per-batch", type=int, help="maximum lines per batch")
    batching.add_argument("--max-source-len", type=int, help="truncate longer sources (default: the model's maximum)")
    search = parser.add_argument_group("search (defaults from the model's generation_config.json/inference.yaml)")
    search.add_argument("--beam-size", type=int, help="beam size (1: greedy)")
    search.add_argument("--max-output-len", type=int, help="maximum number of generated tokens")
    search.add_argument("--len-penalty", type=float, help="length normalization exponent of beam search")
    search.add_argument("--sampling", action="store_true", default=None, help="sample instead of beam search")
    search.add_argument("--temperature", "--sampling-temperature", type=float, dest="temperature",
                        help="sampling temperature")
    search.add_argument("--sampling-topk", type=int, help="sample from the k most likely tokens")
    search.add_argument("--sampling-topp", type=float, help="nucleus sampling probability")
    search.add_argument("--seed", type=int, help="random seed for sampling")
    search.add_argument("--repetition-penalty", "--repeat-penalty", type=float, dest="repeat_penalty",
                        help="divide the scores of tokens already generated by this (> 0; 1: none, ~1.2 discourages "
                             "repeats), as transformers' repetition_penalty")
    search.add_argument("--search", choices=("auto", "pasero", "hf"),
                        help="'pasero': Pasero's exact beam search, 'hf': model.generate (default: auto)")
    search.add_argument("--stop-sequences", nargs="+", metavar="TEXT",
                        help="causal LMs: stop generating at these strings (default: the model's inference.yaml)")
    llm = parser.add_argument_group("causal language models")
    llm.add_argument("--chat", action="store_true",
                     help="interactive chat on standard input: one user message per line, the conversation is kept "
                          "('!reset' starts a new one)")
    llm.add_argument("--system-prompt", help="with --chat: the system message of the conversation")
    llm.add_argument("--adapter", metavar="DIR_OR_REPO", help="a PEFT LoRA adapter (or Pasero bottleneck adapters of a pretrained model) decoded on top of the model")
    llm.add_argument("--merge-adapter", action="store_true", help="merge --adapter into the model's weights")
    evaluation = parser.add_argument_group("evaluation and output")
    evaluation.add_argument("--bleu-tok", help="sacrebleu tokenizer for BLEU (default: 13a, 'zh' for Chinese)")
    evaluation.add_argument("--metrics", nargs="+", metavar="METRIC",
                            help="scores printed with a reference: bleu, chrf, chrf++, spbleu, len_ratio "
                                 "(default: bleu chrf)")
    evaluation.add_argument("--eval-lc", action="store_true", help="case-insensitive scores")
    evaluation.add_argument("--spbleu-model", metavar="SPM_MODEL",
                            help="FLORES-200 SentencePiece model of spbleu (flores200_sacrebleu_tokenizer_spm.model)")
    evaluation.add_argument("--teacher-forcing", action="store_true",
                            help="score the references instead of decoding (needs -r); -v shows their scores")
    evaluation.add_argument("--continue", dest="continue_", action="store_true",
                            help="resume an interrupted run: keep the complete outputs already in -o, decode the rest")
    evaluation.add_argument("-v", "--verbose", action="store_true",
                            help="write Pasero's verbose S-/A-/I-/H-/D-/P- lines instead of plain outputs")
    evaluation.add_argument("--quiet", action="store_true", help="no progress bar and no informational logs")
    runtime = parser.add_argument_group("runtime")
    runtime.add_argument("--device", help="torch device (default: cuda if available, else cpu)")
    runtime.add_argument("--dtype", choices=("float32", "float16", "bfloat16"), help="model dtype (default: as saved)")
    runtime.add_argument("--trust-remote-code", action="store_true", help="allow the model's own Python code to run")
    runtime.add_argument("--backend", choices=("pytorch", "ctranslate2"),
                         help="decoding engine (default: ctranslate2 for a pasero-export directory, else pytorch); "
                              "ctranslate2 on a PyTorch model exports it once into a cache")
    runtime.add_argument("--quantization", metavar="TYPE",
                         help="CTranslate2 compute type (int8, int8_float32, float16, ...; default: as exported)")
    runtime.add_argument("--no-onednn", dest="onednn", action="store_false",
                         help="keep PyTorch's default matrix products on CPU (by default, float32 linear layers go "
                              "through oneDNN when that is faster)")
    return parser


# command-line option -> DecodingOptions field
_DECODING_FLAGS = (
    "beam_size", "max_output_len", "len_penalty", "sampling", "temperature", "sampling_topk", "sampling_topp",
    "seed", "repeat_penalty", "search", "batch_size", "lines_per_batch", "max_source_len", "stop_sequences",
)


def run(args: argparse.Namespace) -> int:
    """Decode every corpus named by `args`; returns the exit status."""
    import torch

    from pasero_hf.generation.inference_corpus import get_inference_corpora
    from pasero_hf.generation.text_generator import TextGenerator
    from pasero_hf.metrics import check_metrics

    if args.buffer_size < 1:
        raise ValueError(f"--buffer-size must be >= 1, got {args.buffer_size}")
    if args.teacher_forcing and not (args.reference or args.eval_corpus):
        raise ValueError("--teacher-forcing needs references: give -r/--reference or -e/--eval-corpus")
    if args.continue_ and not args.output:
        raise ValueError("--continue needs -o/--output (the file to resume)")
    if args.metrics:
        check_metrics(args.metrics, args.spbleu_model)
    options = {name: getattr(args, name) for name in _DECODING_FLAGS if getattr(args, name) is not None}
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = getattr(torch, args.dtype) if args.dtype else None
    generator = TextGenerator.from_pretrained(
        args.model, revision=args.revision, checkpoint=args.ckpt, device=device, dtype=dtype,
        trust_remote_code=args.trust_remote_code, onednn=args.onednn, backend=args.backend,
        quantization=args.quantization, adapter=args.adapter, merge_adapter=args.merge_adapter, **options,
    )
    if generator.feature_extractor is not None or args.task:  # audio in: files, manifests or datasets
        from pasero_hf.generation.audio_inputs import decode_audio_files

        return decode_audio_files(generator, args)
    if args.chat:
        from pasero_hf.generation.prompting import ChatSession

        ChatSession(generator, system_prompt=args.system_prompt).run(sys.stdin, sys.stdout)
        return 0
    corpora = get_inference_corpora(
        inputs=args.input,
        refs=args.reference,
        outputs=args.output,
        eval_prefixes=args.eval_corpus,
        source_langs=args.source_lang,
        target_langs=args.target_lang,
        lang_pairs=args.lang_pairs,
        model_source_langs=generator.source_langs,
        model_target_langs=generator.target_langs,
    )
    for corpus in corpora:  # fail before decoding anything rather than after the first corpus
        for path in (corpus.source_path, corpus.ref_path):
            if path is not None and not os.path.isfile(path):
                raise FileNotFoundError(f"file not found: {path}")
        if corpus.source_path is not None and os.path.getsize(corpus.source_path) == 0:
            logging.getLogger("pasero_hf").warning("%s is empty: nothing to decode", corpus.source_path)
        corpus.domain = args.domain

    scores = []
    for corpus in corpora:
        if corpus.source_path is None and corpus.ref_path is None and args.buffer_size == 1:
            decode_interactively(generator, corpus, verbose=args.verbose)
            continue
        generator.decode_corpus(
            corpus,
            buffer_size=args.buffer_size,
            continue_=args.continue_,
            verbose=args.verbose,
            bleu_tok=args.bleu_tok,
            metrics=args.metrics,
            eval_lc=args.eval_lc,
            spbleu_model=args.spbleu_model,
            teacher_forcing=args.teacher_forcing,
            progress=False if args.quiet else None,
        )
        if generator.metrics:
            scores.append(generator.metrics)
            _print_scores(corpus.corpus_id, generator.metrics)
    if len(scores) > 1:
        average = {name: sum(score[name] for score in scores) / len(scores) for name in scores[0]}
        _print_scores("average", average)
    return 0


def decode_interactively(generator, corpus, verbose: bool = False, options: dict[str, Any] | None = None,
                         stream=None) -> None:
    """Standard input, line by line: each output is printed as soon as its line is read; a line `!name=value` (e.g.
    `!beam_size=1`) changes a decoding option for the following lines instead of being translated."""
    from pasero_hf.generation.inference_corpus import read_lines
    from pasero_hf.generation.output_format import format_hypothesis

    options = dict(options or {})
    layers = [generator.alignment_layer()] if verbose else []
    line_id = 0
    for line in read_lines(None, stream):
        if command := _OPTION_COMMAND.fullmatch(line):
            options = apply_option_command(generator, options, command["name"], command["value"])
            continue
        nbest = generator.decode(line, source_lang=corpus.source_lang, target_lang=corpus.target_lang,
                                 domain=corpus.domain, return_scores=verbose, return_layers=layers, **options)
        print(format_hypothesis(nbest[0][0], line_id, verbose), flush=True)
        line_id += 1


def apply_option_command(generator, options: dict[str, Any], name: str, value: str) -> dict[str, Any]:
    """The options with `name` set to `value` (read as YAML), or unchanged, the error logged, when that is invalid."""
    updated = {**options, name: yaml.safe_load(value)}
    try:
        generator.options.replace(updated, origin="interactive command")
    except ValueError as error:
        logger.error("%s", error)
        return options
    logger.warning("decoding option %s set to %r", name, updated[name])
    return updated


def _print_scores(name: str, metrics: dict[str, float]) -> None:
    print(" | ".join([name] + [f"{metric} {value:.2f}" for metric, value in metrics.items()]), file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO, stream=sys.stderr, format="%(levelname)s: %(message)s"
    )
    if args.quiet:
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()
    try:
        return run(args)
    except (ValueError, FileNotFoundError, FileExistsError, OSError) as error:
        parser.exit(1, f"pasero-decode: error: {error}\n")
    except KeyboardInterrupt:
        parser.exit(130, "pasero-decode: interrupted (resume with --continue)\n")
    return 1


if __name__ == "__main__":
    sys.exit(main())
