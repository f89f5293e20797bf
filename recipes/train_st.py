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
from pasero_hf.training.lifecycle import finish_training, rank_from_env, start_run, world_size_from_env


def main(argv=None) -> int:
    argv, is_main = sys.argv[1:] if argv is None else argv, rank_from_env() == 0
    try:
        config = load_training_config(argv, task="st")             # YAML files + flags
        processor = speech.load_processor(config)                  # Whisper feature extractor + tokenizer
        data = speech.build_speech_data(config, processor, rank_from_env(), world_size_from_env())  # audio checked
        run = start_run(config)                                    # training arguments, MODEL_DIR, logging, resume
        model = speech.load_speech_model(config, processor)        # WhisperForConditionalGeneration (+ LoRA)
        trainer = speech.build_speech_trainer(config, processor, data, model, run)
    except (ConfigError, ValueError) as error:
        if is_main:
            print(f"error: {error}", file=sys.stderr)
        return 2
    result = finish_training(config, trainer, run.resume)          # train, final checkpoint, model_best/model_last
    if is_main:
        print(f"best model: {result.best_dir}\nlast model: {result.last_dir}\nsteps: {result.global_step}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
