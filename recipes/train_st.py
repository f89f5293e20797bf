"""Fine-tune Whisper for speech translation or transcription on audio manifests:

    python recipes/train_st.py -c recipes/configs/speech-sample.yaml [--option value ...]
    accelerate launch recipes/train_st.py -c CONFIG.yaml --model openai/whisper-small --train-audio train.tsv ...

The same options, trainer, resume (rerun the same command) and Ctrl-C/SIGTERM behaviour as recipes/train_mt.py;
`--help` lists every option. Each step below is one call into `pasero_hf.training.speech`;
`pasero-train --task st` runs the same steps.
"""

import sys

from pasero_hf.data.config_parsing import ConfigError
from pasero_hf.training import speech
from pasero_hf.training.config import load_training_config
from pasero_hf.training.lifecycle import (
    finish_training,
    rank_from_env,
    report_error,
    report_result,
    start_run,
    world_size_from_env,
)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        config = load_training_config(argv, task="st")             # YAML files + flags
        processor = speech.load_processor(config)                  # Whisper feature extractor + tokenizer
        data = speech.build_speech_data(config, processor, rank_from_env(), world_size_from_env())  # audio checked
        run = start_run(config)                                    # training arguments, MODEL_DIR, logging, resume
        model = speech.load_speech_model(config, processor)        # WhisperForConditionalGeneration (+ LoRA)
        trainer = speech.build_speech_trainer(config, processor, data, model, run)
    except (ConfigError, ValueError) as error:                     # a bad manifest line or audio file too
        return report_error(error)
    result = finish_training(config, trainer, trainer.stop_callback, run.resume)  # train, save model_best/model_last
    return report_result(result)                                  # where the models are


if __name__ == "__main__":
    sys.exit(main())
