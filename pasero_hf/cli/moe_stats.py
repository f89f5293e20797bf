"""`pasero-moe-stats`: gather per-language gate statistics of an NLLB-MoE model over corpora and save them as JSON.

    pasero-moe-stats MODEL -i test.eng test.fra -s eng_Latn fra_Latn -t spa_Latn -o stats.json
    pasero-moe-stats MODEL -i test.eng -r test.spa -s eng_Latn -t spa_Latn -o stats.json   # teacher forcing

Without references, each batch is translated (greedy or beam search with `model.generate`) and the statistics are
gathered by teacher-forcing the best hypothesis, which routes exactly as its decoding did: like Pasero, the
statistics describe the top hypothesis only. With references (`-r`), they are gathered on the references.
"""

import argparse
import sys
from collections.abc import Sequence

import torch
from tqdm import tqdm
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from pasero_hf.models.nllb_moe import ExpertStatsCollector, PaseroNllbMoeForConditionalGeneration
from pasero_hf.models.nllb_moe.modeling_pasero_nllb_moe import shift_tokens_right


def _read_lines(path: str) -> list[str]:
    with open(path, encoding="utf-8") as corpus:
        return corpus.read().splitlines()


def _check_lang_code(tokenizer: PreTrainedTokenizerBase, lang: str, option: str) -> None:
    if tokenizer.convert_tokens_to_ids(lang) in (None, tokenizer.unk_token_id):
        raise ValueError(f"{option}: language code {lang!r} is not a token of the model's tokenizer")


def _decoder_inputs_until_eos(
    sequences: torch.Tensor, pad_token_id: int, eos_token_id: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Decoder inputs and mask that replay the decoding of `sequences` (`</s> lang tokens </s> <pad>...`, from
    generate or shifted references): every position up to the final end-of-sequence token, excluded, as that token
    is predicted but never fed back."""
    after_first = sequences[:, 1:]
    ended = torch.cumsum(after_first == eos_token_id, dim=1) > 0
    real = torch.cat([torch.ones_like(sequences[:, :1], dtype=torch.bool), ~ended], dim=1)
    real &= sequences != pad_token_id
    real[:, 0] = True
    return sequences, real.long()


@torch.no_grad()
def collect_corpus_stats(
    model: PaseroNllbMoeForConditionalGeneration,
    tokenizer: PreTrainedTokenizerBase,
    collector: ExpertStatsCollector,
    sources: Sequence[str],
    source_lang: str,
    target_lang: str,
    references: Sequence[str] | None = None,
    batch_size: int = 16,
    num_beams: int = 1,
    max_new_tokens: int = 128,
    desc: str | None = None,
) -> None:
    """Add the gate statistics of one corpus (one language pair) to `collector`: teacher forcing on `references`
    when given, else on the model's own translations."""
    if references is not None and len(references) != len(sources):
        raise ValueError(f"{len(sources)} source lines but {len(references)} reference lines")
    tokenizer.src_lang, tokenizer.tgt_lang = source_lang, target_lang
    config = model.config
    device = model.device
    model.eval()
    for start in tqdm(range(0, len(sources), batch_size), desc=desc or f"{source_lang}-{target_lang}", unit="batch"):
        batch_sources = list(sources[start:start + batch_size])
        if references is not None:
            batch = tokenizer(
                batch_sources, text_target=list(references[start:start + batch_size]), padding=True,
                return_tensors="pt",
            ).to(device)
            labels = batch.pop("labels")
            decoder_input_ids, decoder_attention_mask = _decoder_inputs_until_eos(
                shift_tokens_right(labels, config.pad_token_id, config.decoder_start_token_id),
                config.pad_token_id,
                config.eos_token_id,
            )
        else:
            batch = tokenizer(batch_sources, padding=True, return_tensors="pt").to(device)
            sequences = model.generate(
                **batch,
                forced_bos_token_id=tokenizer.convert_tokens_to_ids(target_lang),
                num_beams=num_beams,
                do_sample=False,
                max_new_tokens=max_new_tokens,
            )
            decoder_input_ids, decoder_attention_mask = _decoder_inputs_until_eos(
                sequences, config.pad_token_id, config.eos_token_id
            )
        with collector.recording(source_lang, target_lang):
            model(
                **batch,
                decoder_input_ids=decoder_input_ids,
                decoder_attention_mask=decoder_attention_mask,
                use_cache=False,
            )


def _per_input(values: list[str] | None, count: int, option: str) -> list[str | None]:
    if values is None:
        return [None] * count
    if len(values) == 1:
        return values * count
    if len(values) != count:
        raise ValueError(f"{option}: give one value, or one per input file ({count}); got {len(values)}")
    return values


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pasero-moe-stats",
        description="Gather per-language gate statistics of an NLLB-MoE model (encoder layers: source language, "
        "decoder layers: target language), padding excluded, and save them as JSON.",
    )
    parser.add_argument("model", help="model directory (pasero_nllb_moe or transformers nllb-moe checkpoint)")
    parser.add_argument("-i", "--inputs", nargs="+", required=True, help="source corpora, one sentence per line")
    parser.add_argument("-s", "--source-langs", nargs="+", required=True, help="source language code(s), e.g. eng_Latn")
    parser.add_argument("-t", "--target-langs", nargs="+", required=True, help="target language code(s)")
    parser.add_argument("-r", "--references", nargs="+", help="reference translations: teacher forcing instead of decoding")
    parser.add_argument("-o", "--output", required=True, help="where to write the statistics (JSON)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--beam-size", type=int, default=1)
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--max-lines", type=int, help="use only the first N lines of each corpus")
    parser.add_argument("--device", default="cpu")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        count = len(args.inputs)
        source_langs = _per_input(args.source_langs, count, "--source-langs")
        target_langs = _per_input(args.target_langs, count, "--target-langs")
        if args.references is not None and len(args.references) != count:
            raise ValueError(f"--references: give one per input file ({count}); got {len(args.references)}")
        references = args.references or [None] * count
        model = PaseroNllbMoeForConditionalGeneration.from_pretrained(args.model).to(args.device)
        tokenizer = AutoTokenizer.from_pretrained(args.model)
        for lang in set(source_langs):
            _check_lang_code(tokenizer, lang, "--source-langs")
        for lang in set(target_langs):
            _check_lang_code(tokenizer, lang, "--target-langs")
        collector = ExpertStatsCollector(model)
        for path, source_lang, target_lang, ref_path in zip(args.inputs, source_langs, target_langs, references):
            sources = _read_lines(path)[: args.max_lines]
            refs = None
            if ref_path is not None:
                refs = _read_lines(ref_path)[: args.max_lines]
                if len(refs) != len(sources):
                    raise ValueError(f"{ref_path}: {len(refs)} lines but {path} has {len(sources)}")
            collect_corpus_stats(
                model, tokenizer, collector, sources, source_lang, target_lang, refs,
                batch_size=args.batch_size, num_beams=args.beam_size, max_new_tokens=args.max_new_tokens,
                desc=path,
            )
        collector.save(args.output)
    except (ValueError, OSError) as error:
        print(f"pasero-moe-stats: error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
