"""`pasero-export MODEL_DIR OUTPUT_DIR --format ctranslate2 [--quantization int8]`: export a model for an inference
engine. The output also holds the tokenizer, `generation_config.json` and `inference.yaml`, so that
`pasero-decode OUTPUT_DIR` and `TextGenerator.from_pretrained(OUTPUT_DIR)` decode it like the original.

Examples:
    pasero-export models/tiny-en-es models/tiny-en-es-ct2 --format ctranslate2
    pasero-export models/tiny-en-es models/tiny-en-es-int8 --format ctranslate2 --quantization int8
    pasero-export models/adapters models/adapters-de-fr --format ctranslate2 -s de -t fr   # fixed adapter stack
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from pasero_hf.export import QUANTIZATIONS, export_ctranslate2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pasero-export", description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("model_dir", help="model directory: converted/trained Pasero model, M2M100/NLLB, or an "
                        "original Pasero model directory")
    parser.add_argument("output_dir", help="directory to write (written atomically: nothing is left on error)")
    parser.add_argument("--format", default="ctranslate2", choices=("ctranslate2",), help="export format")
    parser.add_argument("--quantization", metavar="TYPE",
                        help=f"weight type: {', '.join(QUANTIZATIONS)} (default float32)")
    parser.add_argument("--force", action="store_true", help="replace OUTPUT_DIR if it exists and is not empty")
    adapters = parser.add_argument_group("adapters (Pasero adapter models: the stack is fixed at export time)")
    adapters.add_argument("-s", "--source-lang", help="source language the encoder adapters are chosen for")
    adapters.add_argument("-t", "--target-lang", help="target language the decoder adapters are chosen for")
    adapters.add_argument("--domain", help="domain the adapters are chosen for")
    adapters.add_argument("--encoder-adapters", nargs="*", metavar="NAME",
                          help="explicit encoder adapter stack, in order (no names: none)")
    adapters.add_argument("--decoder-adapters", nargs="*", metavar="NAME",
                          help="explicit decoder adapter stack, in order (no names: none)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s: %(message)s")
    try:
        output = export_ctranslate2(
            args.model_dir, args.output_dir, quantization=args.quantization, overwrite=args.force,
            source_lang=args.source_lang, target_lang=args.target_lang, domain=args.domain,
            encoder_adapters=args.encoder_adapters, decoder_adapters=args.decoder_adapters,
        )
    except (ValueError, OSError) as error:  # ExportError, ConversionError, missing or existing files
        parser.exit(1, f"pasero-export: error: {error}\n")
    print(output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
