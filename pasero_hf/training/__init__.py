"""Training: typed configuration (`TrainingConfig`), `PaseroSeq2SeqTrainer`, and `train(config)`.

    from pasero_hf.training import load_training_config, train
    result = train(load_training_config(["-c", "recipes/configs/bible-en-es.yaml", "--max-time", "5"]))
"""

from pasero_hf.training.config import ConfigError, TrainingConfig, load_training_config
from pasero_hf.training.lifecycle import TrainingResult
from pasero_hf.training.run import prepare_trainer, train
from pasero_hf.training.trainer import PaseroSeq2SeqTrainer

__all__ = [
    "ConfigError",
    "PaseroSeq2SeqTrainer",
    "TrainingConfig",
    "TrainingResult",
    "load_training_config",
    "prepare_trainer",
    "train",
]
