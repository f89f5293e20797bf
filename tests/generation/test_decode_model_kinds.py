"""Every model kind the README lists decodes through `pasero-decode`: here a stock transformers `nllb-moe` directory
(tiny, random), which used to end in `AttributeError: 'BaseModelOutput' object has no attribute 'router_logits'`.
(`m2m_100` directories are the `nllb_dir` fixture of the other decoding tests.)"""

import os
import subprocess
import sys

import pytest
import torch

from tests.generation.conftest import LANG_CODES


@pytest.fixture(scope="module")
def stock_nllb_moe_dir(tmp_path_factory, bible_bpe):
    from transformers import NllbMoeConfig, NllbMoeForConditionalGeneration, NllbTokenizer

    vocab, merges = bible_bpe
    tokenizer = NllbTokenizer(vocab=vocab, merges=merges, extra_special_tokens=LANG_CODES, src_lang="eng_Latn",
                              tgt_lang="spa_Latn")
    config = NllbMoeConfig(
        vocab_size=len(tokenizer), d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=2,
        decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64, num_experts=4, expert_capacity=8,
        encoder_sparse_step=2, decoder_sparse_step=2, max_position_embeddings=128, decoder_start_token_id=2,
        pad_token_id=1, eos_token_id=2, bos_token_id=0, init_std=0.5, dropout=0.0,
    )
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("nllb-moe-stock")
    NllbMoeForConditionalGeneration(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def test_stock_nllb_moe_directory_decodes_with_correct_routing(stock_nllb_moe_dir, bible_dir, tmp_path):
    from transformers import AutoTokenizer

    from pasero_hf.models.nllb_moe import PaseroNllbMoeForConditionalGeneration

    sources = (bible_dir / "test.en").read_text(encoding="utf-8").splitlines()[:4]
    (tmp_path / "test.eng_Latn").write_text("\n".join(sources) + "\n", encoding="utf-8")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-m", "pasero_hf.cli.decode", str(stock_nllb_moe_dir), "-i",
                             str(tmp_path / "test.eng_Latn"), "-t", "spa_Latn", "--beam-size", "1",
                             "--max-output-len", "8", "--quiet"], capture_output=True, text=True, env=env, timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    outputs = result.stdout.splitlines()

    # the same as our correctly routed model's greedy generate() on the same checkpoint
    model = PaseroNllbMoeForConditionalGeneration.from_pretrained(stock_nllb_moe_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(stock_nllb_moe_dir, src_lang="eng_Latn")
    expected = []
    for source in sources:
        batch = tokenizer([source], return_tensors="pt")
        with torch.no_grad():
            ids = model.generate(**batch, forced_bos_token_id=tokenizer.convert_tokens_to_ids("spa_Latn"),
                                 num_beams=1, do_sample=False, max_new_tokens=9)
        expected.append(tokenizer.decode(ids[0], skip_special_tokens=True))
    assert outputs == expected
