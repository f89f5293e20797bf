"""`pasero-card MODEL_DIR`: write or refresh MODEL_DIR/README.md, the model card rendered from `model_cards/`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pasero-card", description=__doc__.split("\n\n")[0].replace("`", ""))
    parser.add_argument("model_dir", help="model directory (e.g. MODEL_DIR/model_best of a training run)")
    parser.add_argument("--repo-id", help="the Hub repo id the card's snippets use (default: the run's name)")
    parser.add_argument("--kind", choices=("pasero", "adapters", "nllb_moe_pruned"),
                        help="card template (default: pruned NLLB-MoE when pruning.json exists, else pasero)")
    parser.add_argument("--test", metavar="PREFIX", action="append", default=[],
                        help="translate PREFIX.SRC and score it against PREFIX.TGT for each pair first; the scores "
                             "go to eval_results.json and the card's model-index (repeatable)")
    parser.add_argument("--lang-pairs", nargs="+", metavar="SRC-TGT",
                        help="the model's language pairs when it has no inference.yaml")
    parser.add_argument("--license", help="license id (default: apache-2.0; cc-by-nc-4.0 for pruned NLLB-MoE)")
    parser.add_argument("--base-model", help="Hub repo id of the base model (fine-tunes, adapters, pruned models)")
    parser.add_argument("--datasets", nargs="+", help="Hub dataset ids of the training data")
    parser.add_argument("--tags", nargs="+", help="extra tags")
    parser.add_argument("--hardware", help="what the model was trained on (e.g. '8 x A100')")
    parser.add_argument("--data-citation", help="how to cite the training data")
    parser.add_argument("--template", help="a Jinja template to use instead of model_cards/KIND.md")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from pasero_hf.hub.cards import CardError, record_test_scores, write_model_card

    args = build_parser().parse_args(argv)
    try:
        for prefix in args.test:
            scores = record_test_scores(args.model_dir, prefix, lang_pairs=args.lang_pairs)
            for name, metrics in scores.items():
                print(f"{name}: " + ", ".join(f"{k} {v:.2f}" for k, v in metrics.items()), file=sys.stderr)
        path = write_model_card(args.model_dir, args.repo_id, kind=args.kind, lang_pairs=args.lang_pairs,
                                license=args.license, base_model=args.base_model, datasets=args.datasets,
                                tags=args.tags, hardware=args.hardware, data_citation=args.data_citation,
                                template_path=args.template)
    except (CardError, FileNotFoundError) as error:
        print(f"pasero-card: error: {error}", file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
