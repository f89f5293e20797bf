"""`pasero-push`: publish a model, its adapters alone, or the Gradio Space on the Hugging Face Hub (one commit).

    pasero-push MODEL_DIR USER/NAME [--private] [--revision BRANCH] [--commit-message MSG] [--exist-ok]
    pasero-push MODEL_DIR USER/NAME-lora --adapters-only --base-model USER/BASE
    pasero-push --space USER/SPACE --model USER/NAME

The Hub is `HF_ENDPOINT` (default huggingface.co); the token comes from `hf auth login` or `HF_TOKEN`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pasero-push", description=__doc__.split("\n\n")[0].replace("`", ""),
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("model_dir", nargs="?", help="model directory (e.g. MODEL_DIR/model_best of a training run)")
    parser.add_argument("repo_id", nargs="?", help="Hub model repo USER_OR_ORG/NAME")
    parser.add_argument("--private", action="store_true", help="create the repo private")
    parser.add_argument("--revision", help="branch to push to (created from main if needed; default: main)")
    parser.add_argument("--commit-message", help="commit message (default: 'Upload model with pasero-hf')")
    parser.add_argument("--exist-ok", action="store_true", help="push a new commit to a repo that already exists")
    parser.add_argument("--adapters-only", action="store_true",
                        help="push only the adapter or LoRA weights (with --base-model, the repo they load onto)")
    parser.add_argument("--base-model", help="Hub repo id of the base model (fine-tunes, adapters, pruned models)")
    card = parser.add_argument_group("model card (see pasero-card)")
    card.add_argument("--lang-pairs", nargs="+", metavar="SRC-TGT", help="language pairs when there is no inference.yaml")
    card.add_argument("--license", help="license id (default: apache-2.0; cc-by-nc-4.0 for pruned NLLB-MoE)")
    card.add_argument("--datasets", nargs="+", help="Hub dataset ids of the training data")
    card.add_argument("--tags", nargs="+", help="extra tags")
    card.add_argument("--hardware", help="what the model was trained on")
    space = parser.add_argument_group("Space")
    space.add_argument("--space", metavar="USER/SPACE", help="publish spaces/pasero-translate as this Gradio Space")
    space.add_argument("--model", metavar="USER/NAME", help="with --space: the Hub model the Space serves")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from pasero_hf.hub.push import PushError, push_space, push_to_hub

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.space:
            if not args.model or args.model_dir or args.repo_id:
                parser.error("--space USER/SPACE needs --model USER/NAME and no MODEL_DIR/REPO_ID")
            info = push_space(args.space, args.model, private=args.private, exist_ok=args.exist_ok,
                              revision=args.revision, commit_message=args.commit_message)
        else:
            if not args.model_dir or not args.repo_id:
                parser.error("MODEL_DIR and REPO_ID are required (or --space USER/SPACE --model USER/NAME)")
            info = push_to_hub(args.model_dir, args.repo_id, private=args.private, revision=args.revision,
                               commit_message=args.commit_message, exist_ok=args.exist_ok,
                               adapters_only=args.adapters_only, base_model=args.base_model,
                               lang_pairs=args.lang_pairs, license=args.license, datasets=args.datasets,
                               tags=args.tags, hardware=args.hardware)
    except PushError as error:
        print(f"pasero-push: error: {error}", file=sys.stderr)
        return 1
    print(info.commit_url)
    return 0


if __name__ == "__main__":
    sys.exit(main())
