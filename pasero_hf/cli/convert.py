"""`pasero-convert PASERO_MODEL_DIR OUTPUT_DIR [--checkpoint model_best.bin] [--force]`: convert an original Pasero
model directory into a Hugging Face model directory (safetensors, config.json, generation_config.json, tokenizer)."""

import argparse
import logging
import sys

from pasero_hf.models.pasero.convert_pasero_checkpoint import ConversionError, convert_pasero_checkpoint


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pasero-convert", description=__doc__)
    parser.add_argument("model_dir", help="Pasero model directory (checkpoint, inference.yaml, dict.txt, bpecodes)")
    parser.add_argument("output_dir", help="Hugging Face model directory to write (written atomically)")
    parser.add_argument("--checkpoint", default="model_best.bin", help="checkpoint file name inside MODEL_DIR")
    parser.add_argument("--force", action="store_true", help="replace OUTPUT_DIR if it exists and is not empty")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        output = convert_pasero_checkpoint(args.model_dir, args.output_dir, args.checkpoint, overwrite=args.force)
    except (ConversionError, FileExistsError, FileNotFoundError) as error:
        print(f"pasero-convert: error: {error}", file=sys.stderr)
        return 1
    print(output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
