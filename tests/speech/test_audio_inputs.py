"""Reading, resampling and padding of real speech (espeak-ng clips converted by sox), and every bad audio input:
a clear error naming the file (and manifest line), never a silent truncation."""

import json
import sys

import numpy as np
import pytest

from pasero_hf.data.audio import (
    AudioError,
    Utterance,
    audio_duration,
    features_dataset,
    load_audio,
    read_audio_dataset,
    read_manifest,
)


@pytest.fixture(scope="session")
def feature_extractor(tiny_whisper_dir):
    from transformers import AutoFeatureExtractor

    return AutoFeatureExtractor.from_pretrained(tiny_whisper_dir)  # 2-second window


def test_any_rate_format_and_channels_read_as_the_same_16k_mono_speech(speech_dir, tmp_path, sox):
    reference = speech_dir / "clips" / "en-farmer.flac"  # 16 kHz mono
    expected = load_audio(str(reference))
    assert expected.dtype == np.float32 and len(expected) == pytest.approx(16000 * audio_duration(
        Utterance(str(reference))), abs=1)
    for rate, channels, extension in ((8000, 1, "wav"), (22050, 1, "wav"), (44100, 2, "mp3"), (48000, 1, "flac")):
        converted = tmp_path / f"farmer-{rate}.{extension}"
        sox(reference, "-r", rate, "-c", channels, converted)
        samples = load_audio(str(converted))
        assert samples.dtype == np.float32 and samples.ndim == 1
        # mp3 encoders add a few ms of padding; the others keep the length to a sample or two
        assert abs(len(samples) - len(expected)) <= (2000 if extension == "mp3" else 3), (rate, extension)
        n = min(len(samples), len(expected))
        if extension != "mp3" and rate >= 16000:  # resampled back to 16 kHz: the same waveform
            assert np.corrcoef(samples[:n], expected[:n])[0, 1] > 0.99


def test_features_are_padded_to_the_window_with_silence(speech_dir, feature_extractor):
    utterances = read_manifest(speech_dir / "transcribe.tsv")
    features = np.asarray(features_dataset(utterances, feature_extractor)[:]["input_features"])
    assert features.shape == (len(utterances), 80, 200)  # 2 s window, 100 frames per second
    short = utterances.index(next(u for u in utterances if u.source_lang == "fr"))  # "Allemagne", ~0.7 s
    seconds = audio_duration(utterances[short])
    frame = int(seconds * 100) + 2
    padded = features[short][:, frame:]
    assert np.allclose(padded, padded.min())  # after the speech: the features of silence
    assert features[short][:, : frame - 5].std() > 0.1  # the speech itself varies
    for row, utterance in zip(features, utterances):  # the same features as the extractor on the waveform
        direct = feature_extractor(load_audio(utterance), sampling_rate=16000, padding="max_length",
                                   return_tensors="np")["input_features"][0]
        assert np.allclose(row, direct, atol=1e-5)


def test_bad_audio_files_are_clear_errors(speech_dir, tmp_path, feature_extractor, sox):
    from pasero_hf.data.audio import check_utterances

    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "corrupt.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEfmt garbage that is not audio")
    sox("-n", "-r", 16000, "-c", 1, tmp_path / "nothing.wav", "trim", 0, 0)  # a valid file without samples
    clip = speech_dir / "clips" / "en-ate.wav"
    sox(clip, clip, tmp_path / "long.wav")  # two clips: longer than the 2 s window
    cases = {
        tmp_path / "missing.wav": "audio file not found",
        tmp_path / "empty.wav": "empty audio file",
        tmp_path / "corrupt.wav": "cannot decode audio",
        tmp_path / "nothing.wav": "empty audio",
        tmp_path / "long.wav": "longer than the model's 2 s window",
    }
    for path, message in cases.items():
        with pytest.raises(AudioError, match=message) as error:
            check_utterances([Utterance(str(path), where=f"m.tsv:{len(str(path))}")], feature_extractor)
        assert str(path) in str(error.value) and "m.tsv:" in str(error.value)
    with pytest.raises(AudioError, match="longer than the model's 2 s window"):  # never cut silently
        features_dataset([Utterance(str(tmp_path / "long.wav"))], feature_extractor)[:]


def test_manifest_errors_name_the_file_and_line(tmp_path, speech_dir):
    clip = speech_dir / "clips" / "en-ate.wav"
    cases = {
        "no-header.tsv": (f"{clip}\tThey all ate.\ten\ten\n", r"no-header.tsv:1: the first line must name"),
        "columns.tsv": (f"audio\ttext\tsource_lang\n{clip}\tok\ten\n{clip}\tmissing language\n",
                        r"columns.tsv:3: 2 column\(s\), the header has 3"),
        "extra.tsv": (f"audio\ttext\n{clip}\tone\ttwo\n", r"extra.tsv:2: 3 column\(s\)"),
        "unknown.tsv": ("audio\ttranscript\n", r"unknown.tsv:1: the first line must name"),
        "bad.jsonl": (json.dumps({"audio": str(clip)}) + "\n{not json\n", r"bad.jsonl:2: not valid JSON"),
        "key.jsonl": (json.dumps({"audio": str(clip), "lang": "en"}) + "\n", r"key.jsonl:1: unknown column\(s\) lang"),
        "noaudio.jsonl": (json.dumps({"text": "hi"}) + "\n", r"noaudio.jsonl:1: no audio path"),
    }
    for name, (content, message) in cases.items():
        (tmp_path / name).write_text(content, encoding="utf-8")
        with pytest.raises(AudioError, match=message):
            read_manifest(tmp_path / name)
    good = tmp_path / "good.jsonl"
    good.write_text(json.dumps({"audio": "../" + clip.parent.name + "/" + clip.name, "text": "x"}) + "\n")
    (utterance,) = read_manifest(good, source_lang="en")  # relative to the manifest, languages from the caller
    assert utterance.where == f"{good}:1" and utterance.task == "transcribe"


def test_datasets_directory_with_an_audio_column(tmp_path, speech_dir):
    import datasets

    rows = [(u.audio, u.text) for u in read_manifest(speech_dir / "transcribe.tsv")][:2]
    dataset = datasets.Dataset.from_dict({"audio": [a for a, _ in rows], "text": [t for _, t in rows]})
    dataset.cast_column("audio", datasets.Audio()).save_to_disk(tmp_path / "ds")  # paths; read without torchcodec
    utterances = read_audio_dataset(tmp_path / "ds", source_lang="en")
    assert [u.text for u in utterances] == [t for _, t in rows]
    assert np.array_equal(load_audio(utterances[0]), load_audio(rows[0][0]))
    with pytest.raises(AudioError, match="no column 'sentence'"):
        read_audio_dataset(tmp_path / "ds", text_column="sentence")


def test_training_stops_before_the_first_step_on_bad_audio(tmp_path, speech_dir, tiny_whisper_dir, repo_root,
                                                           capsys, monkeypatch):
    """recipes/train_st.py (and pasero-train --task st) check every manifest line and file first."""
    clip = speech_dir / "clips" / "en-ate.wav"
    (tmp_path / "train.tsv").write_text(f"audio\ttext\tsource_lang\n{clip}\tok\ten\nmissing.wav\tgone\ten\n")
    (tmp_path / "valid.tsv").write_text(f"audio\ttext\tsource_lang\n{clip}\tok\txx\n")
    monkeypatch.syspath_prepend(str(repo_root / "recipes"))
    import train_st

    argv = ["-c", str(repo_root / "recipes/configs/speech-sample.yaml"), "--data-dir", str(tmp_path),
            "--model", str(tiny_whisper_dir), "--model-dir", str(tmp_path / "run"), "--train-audio", "train.tsv",
            "--valid-audio", "valid.tsv"]
    assert train_st.main(argv) == 2
    assert f"{tmp_path / 'train.tsv'}:3: {tmp_path / 'missing.wav'}: audio file not found" in capsys.readouterr().err
    (tmp_path / "train.tsv").write_text(f"audio\ttext\tsource_lang\n{clip}\tok\ten\n")
    assert train_st.main(argv) == 2
    assert f"{tmp_path / 'valid.tsv'}:2: language 'xx'" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()  # nothing written
    sys.modules.pop("train_st", None)


def test_decoding_a_text_model_with_audio_is_an_error(fixtures_dir, speech_dir, tmp_path):
    from pasero_hf.generation import TextGenerator
    from pasero_hf.models.pasero.convert_pasero_checkpoint import convert_pasero_checkpoint

    generator = TextGenerator.from_pretrained(convert_pasero_checkpoint(fixtures_dir / "pasero-tiny-en-es",
                                                                        tmp_path / "tiny"))
    with pytest.raises(ValueError, match="this model takes text, not audio"):
        generator.decode_audio(str(speech_dir / "clips" / "en-ate.wav"), source_lang="en")


def test_dry_run_checks_jsonl_manifests_and_reports_the_sets(tmp_path, speech_dir, tiny_whisper_dir, repo_root,
                                                             capsys):
    from pasero_hf.cli.train import main

    rows = [{"audio": str(u.audio), "text": u.text, "source_lang": u.source_lang}
            for u in read_manifest(speech_dir / "transcribe.tsv")]
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    argv = ["-c", str(repo_root / "recipes/configs/speech-sample.yaml"), "--data-dir", str(speech_dir),
            "--model", str(tiny_whisper_dir), "--model-dir", str(tmp_path / "run"),
            "--train-audio", str(tmp_path / "train.jsonl"), "--dry-run"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert f"train: {len(rows)} utterances, de-de, en-en, es-es, fr-fr" in out
    assert "valid translate.es-en: 1 utterances, translate, metrics bleu, chrf" in out
    assert "valid transcribe.fr-fr: 1 utterances, transcribe, metrics wer" in out
    assert not (tmp_path / "run").exists()
    assert main(argv[:-1] + ["--task", "speech_translation", "--dry-run"]) == 0  # Pasero's name of the task
