"""Fine-tune Whisper for speech translation or transcription on audio manifests:

    python recipes/train_st.py -c recipes/configs/speech-sample.yaml [--option value ...]
    accelerate launch recipes/train_st.py -c CONFIG.yaml --model openai/whisper-small --train-audio train.tsv ...

The same options, trainer, resume (rerun the same command) and Ctrl-C/SIGTERM behaviour as recipes/train_mt.py;
`pasero-train --task st` runs the same steps. Each step below is one call into `pasero_hf.training.speech`.
"""

import os
import sys

from pasero_hf.data.config_parsing import ConfigError
from pasero_hf.training import speech
from pasero_hf.training.config import load_training_config
from pasero_hf.training.run import (
    check_model_dir,
    finish_training,
    resume_checkpoint,
    setup_logging,
    world_size_from_env,
)


def main(argv=None) -> int:
    try:
        rank, world_size = int(os.environ.get("RANK", "0")), world_size_from_env()  # under accelerate launch
        config = load_training_config(sys.argv[1:] if argv is None else argv, task="st")  # YAML files + flags
        processor = speech.load_processor(config)               # Whisper feature extractor + tokenizer
        data = speech.build_speech_data(config, processor, rank, world_size)  # manifests read, audio files checked
        check_model_dir(config.model_dir)
        resume = resume_checkpoint(config, is_main=rank == 0)    # the last complete checkpoint, if any
        setup_logging(config.model_dir, is_main=rank == 0, append=resume is not None)
        model = speech.load_speech_model(config, processor)      # WhisperForConditionalGeneration (+ LoRA)
        trainer, stop, resume = speech.build_speech_trainer(config, processor, data, model, resume)
    except (ConfigError, ValueError) as error:
        if rank == 0:
            print(f"error: {error}", file=sys.stderr)
        return 2
    result = finish_training(config, trainer, stop, resume)      # train, final checkpoint, model_best/model_last
    if rank == 0:
        print(f"best model: {result.best_dir}\nlast model: {result.last_dir}\nsteps: {result.global_step}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
