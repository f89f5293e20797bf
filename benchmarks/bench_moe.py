"""Language-specific expert pruning: parameters, checkpoint size, peak RSS and decoding time before and after
pruning 50% and 80% of the experts of a small random NLLB-MoE, plus the same arithmetic for NLLB-200 54B.

    python benchmarks/bench_moe.py [--experts 64] [--d-model 128] [--ffn 512] [--layers 4]

The small model's statistics come from pasero_hf's router hooks on the bundled Bible text (eng_Latn-spa_Latn,
teacher forcing); pruning keeps a fixed number of experts per layer by importance. Each variant is loaded and run
in a fresh process, so that peak RSS measures that variant alone. The 54B numbers are parameter counts of
`PaseroNllbMoeForConditionalGeneration` built on the meta device with the released configuration (d_model 2048,
24+24 layers, ffn 8192, 128 experts in every 4th layer: 1536 experts).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    markdown_table,
    peak_rss_mb,
    proc_status_mb,
    summarize,
    time_repeats,
    update_results,
)

LANGS = ["eng_Latn", "spa_Latn"]


def _tokenizer(work: Path):
    import sentencepiece as spm
    from transformers import NllbTokenizer

    from pasero_hf.data.sample_data import bible_en_es_dir

    lines = []
    for lang in ("en", "es"):
        lines += (Path(bible_en_es_dir()) / f"train.{lang}").read_text(encoding="utf-8").splitlines()[:5000]
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines), model_prefix=str(work / "sentencepiece.bpe"), vocab_size=2000,
        model_type="bpe", bos_id=0, pad_id=1, eos_id=2, unk_id=3, minloglevel=2,
    )
    return NllbTokenizer.from_pretrained(work, src_lang="eng_Latn", tgt_lang="spa_Latn", extra_special_tokens=LANGS)


def _source_lines(count: int) -> tuple[list[str], list[str]]:
    from pasero_hf.data.sample_data import bible_en_es_dir

    directory = Path(bible_en_es_dir())
    en = (directory / "valid.en").read_text(encoding="utf-8").splitlines()[:count]
    es = (directory / "valid.es").read_text(encoding="utf-8").splitlines()[:count]
    return en, es


def build_variants(args, work: Path) -> dict[str, Path]:
    """Save the full random model and its pruned versions; return {name: directory}."""
    from pasero_hf.cli.moe_stats import collect_corpus_stats
    from pasero_hf.models.nllb_moe import (
        ExpertStatsCollector,
        PaseroNllbMoeConfig,
        PaseroNllbMoeForConditionalGeneration,
        prune_model,
        select_experts,
    )

    tokenizer = _tokenizer(work)
    torch.manual_seed(0)
    config = PaseroNllbMoeConfig(
        vocab_size=len(tokenizer), d_model=args.d_model, encoder_layers=args.layers, decoder_layers=args.layers,
        encoder_ffn_dim=args.ffn, decoder_ffn_dim=args.ffn, encoder_attention_heads=4, decoder_attention_heads=4,
        num_experts=args.experts, encoder_sparse_step=2, decoder_sparse_step=2, dropout=0.0, attention_dropout=0.0,
        encoder_layerdrop=0.0, decoder_layerdrop=0.0,
    )
    model = PaseroNllbMoeForConditionalGeneration(config).eval()
    variants = {"full": work / "full"}
    model.save_pretrained(variants["full"])
    tokenizer.save_pretrained(variants["full"])

    collector = ExpertStatsCollector(model)
    en, es = _source_lines(args.stats_lines)
    collect_corpus_stats(model, tokenizer, collector, en, "eng_Latn", "spa_Latn", references=es, batch_size=16)
    stats = collector.to_dict()
    for fraction in (0.5, 0.8):
        keep = max(2, round(args.experts * (1 - fraction)))
        pruned = PaseroNllbMoeForConditionalGeneration.from_pretrained(variants["full"]).eval()
        selection = select_experts(pruned, stats, [("eng_Latn", "spa_Latn")], keep_encoder=keep, keep_decoder=keep)
        prune_model(pruned, selection)
        name = f"pruned {int(fraction * 100)}%"
        variants[name] = work / name.replace(" ", "-").replace("%", "")
        pruned.save_pretrained(variants[name])
        tokenizer.save_pretrained(variants[name])
    return variants


def measure_variant(model_dir: str, lines: int) -> dict:
    """Run in a child process: load, translate `lines` sentences greedily; report params, time and peak RSS."""
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    import pasero_hf.models  # noqa: F401  (registers the Auto classes)

    imports_peak = peak_rss_mb()
    _reset_peak_rss()  # measure from here: the imports' own peak would hide the model's
    rss_before = proc_status_mb("VmRSS:")
    model = AutoModelForSeq2SeqLM.from_pretrained(model_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    en, _ = _source_lines(lines)
    batch = tokenizer(en, padding=True, return_tensors="pt")
    spa = tokenizer.convert_tokens_to_ids("spa_Latn")

    def translate():
        with torch.no_grad():
            model.generate(**batch, forced_bos_token_id=spa, max_new_tokens=32, do_sample=False)

    times = time_repeats(translate, repeats=3, warmup=1)
    size = sum(f.stat().st_size for f in Path(model_dir).glob("*.safetensors"))
    return {
        "params": sum(p.numel() for p in model.parameters()),
        "checkpoint_mb": size / 2**20,
        "decode_s": summarize(times)["median"],
        "rss_before_mb": rss_before,
        "peak_rss_mb": peak_rss_mb(),
        "process_peak_rss_mb": max(imports_peak, peak_rss_mb()),
    }


def _reset_peak_rss() -> None:
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")


def nllb_54b_arithmetic() -> list[list]:
    """Parameter counts and fp16 weight sizes of NLLB-200 54B, full and with 50% / 80% of its experts pruned."""
    from pasero_hf.models.nllb_moe import PaseroNllbMoeConfig, PaseroNllbMoeForConditionalGeneration

    base = dict(
        vocab_size=256206, d_model=2048, encoder_layers=24, decoder_layers=24, encoder_ffn_dim=8192,
        decoder_ffn_dim=8192, encoder_attention_heads=16, decoder_attention_heads=16, num_experts=128,
        encoder_sparse_step=4, decoder_sparse_step=4,
    )
    rows = []
    for label, keep_encoder, keep_decoder in (
        ("full (1536 experts)", 128, 128),
        ("50% pruned, 64 + 64 per layer", 64, 64),
        ("80% pruned, 26 + 26 per layer", 26, 26),
        ("80% pruned, 3:1 encoder:decoder, 38 + 13 per layer", 38, 13),
    ):
        config = PaseroNllbMoeConfig(**base)
        config.encoder_experts_per_layer = [keep_encoder if n else 0 for n in config.encoder_experts_per_layer]
        config.decoder_experts_per_layer = [keep_decoder if n else 0 for n in config.decoder_experts_per_layer]
        with torch.device("meta"):
            model = PaseroNllbMoeForConditionalGeneration(config)
        total = sum(p.numel() for p in model.parameters())
        experts = sum(p.numel() for name, p in model.named_parameters() if ".experts." in name)
        count = sum(config.encoder_experts_per_layer) + sum(config.decoder_experts_per_layer)
        rows.append([label, count, total / 1e9, experts / 1e9, total * 2 / 1e9])
        del model
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experts", type=int, default=64)
    parser.add_argument("--d-model", type=int, default=128)
    parser.add_argument("--ffn", type=int, default=512)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--stats-lines", type=int, default=64)
    parser.add_argument("--decode-lines", type=int, default=16)
    parser.add_argument("--measure", help=argparse.SUPPRESS)  # child process: measure one saved variant
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure_variant(args.measure, args.decode_lines)))
        return 0

    rows = []
    with tempfile.TemporaryDirectory() as work:
        variants = build_variants(args, Path(work))
        for name, directory in variants.items():
            child = subprocess.run(
                [sys.executable, __file__, "--measure", str(directory), "--decode-lines", str(args.decode_lines)],
                capture_output=True, text=True, check=True, env=dict(os.environ, OMP_NUM_THREADS="1"),
            )
            result = json.loads(child.stdout.strip().splitlines()[-1])
            rows.append([
                name, result["params"], result["checkpoint_mb"], result["peak_rss_mb"],
                result["peak_rss_mb"] - result["rss_before_mb"], result["process_peak_rss_mb"], result["decode_s"],
            ])
            print(name, result, flush=True)

    headers = ["model", "parameters", "checkpoint (MiB)", "peak RSS, load + decode (MiB)",
               "of which above RSS before loading (MiB)", "process peak RSS (MiB)", "greedy decode (s)"]
    small = markdown_table(headers, rows)
    big_rows = nllb_54b_arithmetic()
    big = markdown_table(["NLLB-200 54B", "experts", "parameters (B)", "expert parameters (B)", "fp16 weights (GB)"], big_rows)
    markdown = (
        f"Random NLLB-MoE: d_model {args.d_model}, {args.layers}+{args.layers} layers (every 2nd sparse), "
        f"{args.experts} experts per sparse layer, ffn {args.ffn}; statistics on {args.stats_lines} Bible lines "
        f"(eng_Latn-spa_Latn, teacher forcing); pruning by importance, same count per layer; greedy decoding of "
        f"{args.decode_lines} lines (batch of {args.decode_lines}, 32 new tokens, 1 thread), median of 3. Each variant "
        f"runs in its own process; 'load + decode' is the peak RSS from just before loading the model (VmHWM reset), "
        f"'process' includes the imports of torch and transformers.\n\n"
        f"{small}\n\nArithmetic for NLLB-200 54B (parameters counted on the meta device):\n\n{big}\n"
    )
    print(markdown)
    update_results("NLLB-MoE expert pruning", markdown, command="python benchmarks/bench_moe.py")
    return 0


if __name__ == "__main__":
    sys.exit(main())
