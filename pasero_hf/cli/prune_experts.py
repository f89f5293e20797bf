"""`pasero-prune-experts`: keep only the experts a language pair needs and save a smaller model.

    pasero-prune-experts MODEL --stats stats.json --keep-encoder 25 --keep-decoder 8 --langs eng_Latn-spa_Latn -o OUT
    pasero-prune-experts MODEL --stats stats.json --threshold 0.01 --min-experts-per-layer 4 -o OUT

Encoder experts are chosen from the source language's statistics, decoder experts from the target language's; a
pair without statistics of its own uses those of its source and target languages in other pairs. The output is a
standard `save_pretrained` directory (with the tokenizer, if the model directory has one) whose config records the
per-layer expert counts, plus `pruning.json` with the original ids of the kept experts.
"""

import argparse
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence

from transformers import AutoTokenizer

from pasero_hf.models.nllb_moe import PaseroNllbMoeForConditionalGeneration, load_stats, prune_model, select_experts
from pasero_hf.models.nllb_moe.expert_stats import split_lang_pair
from pasero_hf.models.nllb_moe.pruning import METRICS


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pasero-prune-experts",
        description="Language-specific expert pruning of an NLLB-MoE model from gate statistics (pasero-moe-stats).",
    )
    parser.add_argument("model", help="model directory")
    parser.add_argument("--stats", required=True, help="statistics JSON written by pasero-moe-stats")
    parser.add_argument("--keep-encoder", type=int, help="experts kept in every encoder sparse layer")
    parser.add_argument("--keep-decoder", type=int, help="experts kept in every decoder sparse layer")
    parser.add_argument("--threshold", type=float, help="instead: keep every expert whose score reaches this value")
    parser.add_argument(
        "--min-experts-per-layer", type=int, default=2, help="with --threshold: minimum experts per layer (default 2)"
    )
    parser.add_argument("--metric", choices=METRICS, default="importance", help="expert score (default: importance)")
    parser.add_argument(
        "--langs", nargs="+", help="language pairs SRC-TGT the pruned model serves (default: every pair in --stats)"
    )
    parser.add_argument("-o", "--output", required=True, help="output directory (must not exist or be empty)")
    return parser


def _write_pruned(model, tokenizer, output: str, record: dict) -> None:
    """Save to a temporary sibling directory, then rename it, so OUT is either complete or absent."""
    parent = os.path.dirname(os.path.abspath(output))
    os.makedirs(parent, exist_ok=True)
    tmp_dir = tempfile.mkdtemp(dir=parent, prefix=".tmp-pruned-")
    try:
        model.save_pretrained(tmp_dir)
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp_dir)
        with open(os.path.join(tmp_dir, "pruning.json"), "w", encoding="utf-8") as record_file:
            json.dump(record, record_file, indent=1)
        if os.path.isdir(output):
            os.rmdir(output)  # only an empty directory may be replaced
        os.replace(tmp_dir, output)
    except BaseException:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        raise


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if os.path.exists(args.output) and (not os.path.isdir(args.output) or os.listdir(args.output)):
            raise ValueError(f"-o: {args.output} already exists and is not an empty directory")
        stats = load_stats(args.stats)
        pairs = args.langs or sorted(stats["pairs"])
        lang_pairs = [split_lang_pair(pair) for pair in pairs]
        model = PaseroNllbMoeForConditionalGeneration.from_pretrained(args.model)
        selection = select_experts(
            model,
            stats,
            lang_pairs,
            metric=args.metric,
            keep_encoder=args.keep_encoder,
            keep_decoder=args.keep_decoder,
            threshold=args.threshold,
            min_per_layer=args.min_experts_per_layer,
            stats_path=args.stats,
        )
        prune_model(model, selection)
        has_tokenizer = os.path.isfile(os.path.join(args.model, "tokenizer_config.json"))
        tokenizer = AutoTokenizer.from_pretrained(args.model) if has_tokenizer else None
        record = {"lang_pairs": pairs, "metric": args.metric, "kept_experts": selection.to_dict()}
        _write_pruned(model, tokenizer, args.output, record)
        kept = sum(len(ids) for layers in selection.experts.values() for ids in layers.values())
        print(f"kept {kept} experts; saved to {args.output}", file=sys.stderr)
    except (ValueError, OSError) as error:
        print(f"pasero-prune-experts: error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
