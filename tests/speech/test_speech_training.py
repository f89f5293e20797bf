"""A tiny random Whisper fine-tuned on real speech (espeak-ng clips in en/es/fr/de, wav/flac/mp3 at 8-44.1 kHz)
learns them by heart; the saved model transcribes and translates them back through TextGenerator and pasero-decode;
the run resumes from its checkpoint."""

import pytest
import yaml

from pasero_hf.cli.decode import main as decode_main
from pasero_hf.data.audio import read_manifest

pytestmark = pytest.mark.slow  # one short training run (about 40 s on 2 idle cores), shared by the tests below


def test_training_resumes_and_validates_with_wer_bleu_chrf(trained_speech_run):
    from transformers import AutoFeatureExtractor

    model_dir, first, second = trained_speech_run
    assert (first.global_step, second.global_step) == (20, 40)
    log = (model_dir / "train.log").read_text(encoding="utf-8")
    assert "resuming from" in log and "checkpoint-20" in log
    last_valid = [line for line in log.splitlines() if "| valid | step 40" in line][-1]
    # transcripts are scored with WER, translations with BLEU/chrF, per set and on average
    assert "eval_transcribe.es-es_wer 0 " in last_valid and "eval_translate.fr-en_chrf 100.00" in last_valid
    assert "eval_wer 0 " in last_valid
    for name in ("model_best", "model_last"):
        assert (model_dir / name / "model.safetensors").is_file()
        assert AutoFeatureExtractor.from_pretrained(model_dir / name).chunk_length == 2
    inference = yaml.safe_load((model_dir / "model_best" / "inference.yaml").read_text())
    assert inference["task"] == "speech_translation" and "es-en" in inference["lang_pairs"]


def test_reset_optimizer_takes_the_last_checkpoint_weights_only(trained_speech_run, speech_dir, tiny_whisper_dir,
                                                                 repo_root, tmp_path):
    import shutil

    import torch
    from safetensors.torch import load_file

    from pasero_hf.training.config import load_training_config
    from pasero_hf.training.speech import prepare_speech_trainer

    model_dir = tmp_path / "run"
    shutil.copytree(trained_speech_run[0], model_dir)
    trainer, _, resume = prepare_speech_trainer(load_training_config(
        ["-c", str(repo_root / "recipes/configs/speech-sample.yaml"), "--data-dir", str(speech_dir), "--model",
         str(tiny_whisper_dir), "--model-dir", str(model_dir), "--reset-optimizer"]))
    assert resume is None and trainer.train_dataset.steps == 0
    saved = load_file(str(model_dir / "checkpoint-40" / "model.safetensors"))
    state = trainer.model.state_dict()
    assert all(torch.equal(state[key], value) for key, value in saved.items())


def test_text_generator_decodes_the_learned_clips(trained_speech_run, speech_dir):
    from pasero_hf.generation import TextGenerator

    model_dir, _, _ = trained_speech_run
    generator = TextGenerator.from_pretrained(model_dir)  # model_best
    transcribe = read_manifest(speech_dir / "transcribe.tsv")
    outputs = generator.decode_audio(*transcribe)
    assert [nbest[0]["detok"] for nbest in outputs] == [u.text for u in transcribe]
    # the same Spanish clip, translated into English: the task token decides
    (es_clip,) = [u.audio for u in transcribe if u.source_lang == "es"]
    (translation,) = generator.decode_audio(es_clip, source_lang="es", target_lang="en", task="translate")
    (transcript,) = generator.decode_audio(es_clip, source_lang="es")
    assert translation[0]["detok"] == "They all ate and were filled."
    assert transcript[0]["detok"] == "Y comieron todos, y se hartaron."


def test_pasero_decode_audio_files_and_manifests(trained_speech_run, speech_dir, tmp_path, capsys):
    model_dir, _, _ = trained_speech_run
    # a manifest: languages and task from its columns, scored against its text (BLEU/chrF for translations)
    assert decode_main([str(model_dir), "--quiet", "-i", str(speech_dir / "translate.tsv"),
                        "-o", str(tmp_path / "out.en")]) == 0
    assert (tmp_path / "out.en").read_text().splitlines() == [u.text for u in read_manifest(
        speech_dir / "translate.tsv")]
    assert "chrf 100.00" in capsys.readouterr().err
    # audio files (mp3 at 44.1 kHz stereo; wav at 8 kHz) with --task and -s/-t; transcripts scored with WER
    assert decode_main([str(model_dir), "--quiet", "-i", str(speech_dir / "clips/es-ate.mp3"),
                        "--task", "translate", "-s", "es", "-t", "en"]) == 0
    assert capsys.readouterr().out.splitlines() == ["They all ate and were filled."]
    (tmp_path / "ref.fr").write_text("Allemagne\n")
    assert decode_main([str(model_dir), "--quiet", "-i", str(speech_dir / "clips/fr-germany.wav"),
                        "--task", "transcribe", "-s", "fr", "-r", str(tmp_path / "ref.fr")]) == 0
    captured = capsys.readouterr()
    assert captured.out.splitlines() == ["Allemagne"] and "wer 0.00" in captured.err
