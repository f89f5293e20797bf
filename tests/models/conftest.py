import subprocess
import sys
from pathlib import Path

import pytest
import torch

from pasero_hf.models.pasero import PaseroConfig, PaseroForConditionalGeneration

TINY = dict(
    vocab_size=40,
    embed_dim=16,
    encoder_layers=2,
    decoder_layers=2,
    encoder_attention_heads=2,
    decoder_attention_heads=4,
    encoder_ffn_dim=32,
    decoder_ffn_dim=24,
    dropout=0.0,
)


@pytest.fixture
def tiny_pasero():
    """Factory: a tiny random Pasero model in eval mode (seeded), with config overrides."""

    def build(seed: int = 0, **overrides) -> PaseroForConditionalGeneration:
        torch.manual_seed(seed)
        return PaseroForConditionalGeneration(PaseroConfig(**{**TINY, **overrides})).eval()

    return build


@pytest.fixture
def source_batch():
    """A right-padded batch of 3 source sequences ending with </s> (2); pad = 1."""
    generator = torch.Generator().manual_seed(1)
    ids = torch.randint(4, 40, (3, 7), generator=generator)
    ids[0, -1] = 2
    ids[1, 4], ids[1, 5:] = 2, 1
    ids[2, 2], ids[2, 3:] = 2, 1
    return ids, (ids != 1).long()


@pytest.fixture(scope="session")
def converted_tiny_dir(fixtures_dir, tmp_path_factory) -> Path:
    """tests/fixtures/pasero-tiny-en-es converted by the real `pasero-convert` command."""
    output = tmp_path_factory.mktemp("converted") / "tiny-en-es"
    result = subprocess.run(
        [str(Path(sys.executable).parent / "pasero-convert"), str(fixtures_dir / "pasero-tiny-en-es"), str(output)],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(output)
    return output
