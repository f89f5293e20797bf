"""`pasero-moe-stats` and `pasero-prune-experts` as installed console scripts, on a tiny model and real text."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForSeq2SeqLM

from pasero_hf.cli import moe_stats, prune_experts

BIN = Path(sys.executable).parent


def _run(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run([str(BIN / args[0]), *args[1:]], capture_output=True, text=True, env=env, timeout=120)


@pytest.fixture(scope="module")
def moe_dir(make_moe, nllb_tokenizer, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tiny-nllb-moe")
    model = make_moe(seed=2)
    with torch.no_grad():  # confident gates, so that languages prefer different experts
        for name, param in model.named_parameters():
            if "router.classifier" in name:
                param.normal_(std=1.0)
    model.save_pretrained(out)
    nllb_tokenizer.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def corpora(bible_dir, tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("corpora")
    paths = {}
    for lang in ("en", "es"):
        paths[lang] = out / f"valid.{lang}"
        lines = (Path(bible_dir) / f"valid.{lang}").read_text(encoding="utf-8").splitlines()[:6]
        paths[lang].write_text("\n".join(lines) + "\n", encoding="utf-8")
    return paths


@pytest.mark.slow  # two console-script processes: about 25 s on 2 busy cores
def test_stats_then_prune(moe_dir, corpora, tmp_path):
    stats_path = tmp_path / "stats.json"
    result = _run(
        "pasero-moe-stats", str(moe_dir), "-i", str(corpora["en"]), str(corpora["es"]),
        "-s", "eng_Latn", "spa_Latn", "-t", "spa_Latn", "eng_Latn", "-o", str(stats_path),
        "--batch-size", "4", "--max-new-tokens", "8",
    )
    assert result.returncode == 0, result.stderr
    stats = json.loads(stats_path.read_text())
    assert set(stats["pairs"]) == {"eng_Latn-spa_Latn", "spa_Latn-eng_Latn"}
    encoder = stats["pairs"]["eng_Latn-spa_Latn"]["encoder"]
    assert encoder["num_tokens"] > 6 and sum(encoder["layers"]["1"]["top1"]) == pytest.approx(1.0)
    decoder = stats["pairs"]["eng_Latn-spa_Latn"]["decoder"]
    assert 6 <= decoder["num_tokens"] <= 6 * 9  # at most max-new-tokens steps per sentence, no padding

    out = tmp_path / "pruned"
    result = _run(
        "pasero-prune-experts", str(moe_dir), "--stats", str(stats_path), "--keep-encoder", "4", "--keep-decoder", "2",
        "--langs", "eng_Latn-spa_Latn", "-o", str(out),
    )
    assert result.returncode == 0, result.stderr
    pruned = AutoModelForSeq2SeqLM.from_pretrained(out)
    assert pruned.config.encoder_experts_per_layer == [0, 4] and pruned.config.decoder_experts_per_layer == [0, 2]
    record = json.loads((out / "pruning.json").read_text())
    assert len(record["kept_experts"]["encoder"]["1"]) == 4 and (out / "tokenizer.json").exists()
    # the kept encoder experts are the four most important ones for English
    layer = stats["pairs"]["eng_Latn-spa_Latn"]["encoder"]["layers"]["1"]
    importance = torch.tensor(layer["top1"]) * torch.tensor(layer["conf1"])
    assert record["kept_experts"]["encoder"]["1"] == sorted(importance.topk(4).indices.tolist())



def _prune_error(capsys, *argv: str) -> str:
    """Run `pasero-prune-experts` in-process (subprocesses cost seconds each); return its error message."""
    assert prune_experts.main(list(argv)) == 1
    return capsys.readouterr().err


def test_prune_cli_errors(moe_dir, corpora, tmp_path, capsys):
    stats_path = tmp_path / "stats.json"
    argv = [str(moe_dir), "-i", str(corpora["en"]), "-r", str(corpora["es"]), "-s", "eng_Latn", "-t", "spa_Latn"]
    assert moe_stats.main([*argv, "--max-lines", "2", "-o", str(stats_path)]) == 0
    other = str(tmp_path / "other")
    common = [str(moe_dir), "--stats", str(stats_path), "-o", other]
    assert "none with source language fra_Latn" in _prune_error(
        capsys, *common, "--keep-encoder", "4", "--keep-decoder", "2", "--langs", "fra_Latn-deu_Latn"
    )
    assert "encoder layer 1 has only 8" in _prune_error(capsys, *common, "--keep-encoder", "9", "--keep-decoder", "2")
    assert "--keep-decoder: must be at least 2" in _prune_error(capsys, *common, "--keep-encoder", "2", "--keep-decoder", "0")
    assert not os.path.exists(other)

    pruned = tmp_path / "pruned"
    assert prune_experts.main([*common[:-1], str(pruned), "--threshold", "0.5", "--min-experts-per-layer", "3"]) == 0
    assert AutoModelForSeq2SeqLM.from_pretrained(pruned).config.decoder_experts_per_layer == [0, 3]
    assert "gathered on another model" in _prune_error(
        capsys, str(pruned), "--stats", str(stats_path), "--keep-encoder", "2", "--keep-decoder", "2", "-o", other
    )
    assert "already exists" in _prune_error(
        capsys, str(moe_dir), "--stats", str(stats_path), "--keep-encoder", "2", "--keep-decoder", "2", "-o", str(pruned)
    )


def test_stats_cli_rejects_unknown_language_and_misaligned_references(moe_dir, corpora, tmp_path, capsys):
    output = str(tmp_path / "s.json")
    assert moe_stats.main([str(moe_dir), "-i", str(corpora["en"]), "-s", "xxx_Latn", "-t", "spa_Latn", "-o", output]) == 1
    assert "--source-langs: language code 'xxx_Latn'" in capsys.readouterr().err
    short = tmp_path / "short.es"
    short.write_text("uno\n", encoding="utf-8")
    argv = [str(moe_dir), "-i", str(corpora["en"]), "-r", str(short), "-s", "eng_Latn", "-t", "spa_Latn", "-o", output]
    assert moe_stats.main(argv) == 1
    assert f"{short}: 1 lines but" in capsys.readouterr().err
    assert not (tmp_path / "s.json").exists()
