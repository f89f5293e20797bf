"""Audio for speech translation: manifests, reading and resampling, checks, and Whisper features through `datasets`.

A manifest lists utterances, one per line, as TSV with a header line or as JSONL; audio paths are relative to the
manifest's directory::

    audio	text	source_lang	target_lang
    clips/0001.wav	In the beginning God created the heaven and the earth.	es	en

Columns: `audio` (required), `text` (the transcript, or the translation when `target_lang` differs from
`source_lang`; required for training), `source_lang` (the spoken language) and `target_lang` (default: the
configured languages). A local `datasets` directory (`save_to_disk`) with an `Audio` column works the same way.

Reading: soundfile (libsndfile: wav, flac, ogg and mp3), stereo mixed down to mono, any sample rate resampled to
16 kHz with soxr. `datasets` 5 decodes `Audio` columns with torchcodec, whose wheels are built for one torch
version each: we read the files and bytes ourselves (`Audio(decode=False)`) and extract features in a `datasets`
transform. Audio longer than the model's window (30 s for Whisper) is an error: it is never cut silently.
"""

from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

SAMPLING_RATE = 16000
AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg", ".oga", ".opus")
MANIFEST_COLUMNS = ("audio", "text", "source_lang", "target_lang")


class AudioError(ValueError):
    """An audio file or manifest that cannot be used; the message names the file (and manifest line)."""


@dataclass
class Utterance:
    """One audio input: a file path or encoded bytes, with its text and languages. `where` names its origin for
    error messages (`manifest.tsv:3`, `dataset[12]`, or the file itself)."""

    audio: str | bytes
    text: str | None = None
    source_lang: str | None = None
    target_lang: str | None = None
    where: str = ""

    @property
    def task(self) -> str:
        """'transcribe' when the text is in the spoken language, else 'translate'."""
        return "transcribe" if self.target_lang in (None, self.source_lang) else "translate"

    def describe(self) -> str:
        name = self.audio if isinstance(self.audio, str) else "audio bytes"
        return f"{self.where}: {name}" if self.where and self.where != name else str(name)


def _open(utterance: Utterance):
    return utterance.audio if isinstance(utterance.audio, str) else io.BytesIO(utterance.audio)


def audio_duration(utterance: Utterance) -> float:
    """Seconds of audio, from the file header (no decoding); AudioError for a missing, empty or corrupt file."""
    import soundfile

    if isinstance(utterance.audio, str):
        if not os.path.isfile(utterance.audio):
            raise AudioError(f"{utterance.describe()}: audio file not found")
        if os.path.getsize(utterance.audio) == 0:
            raise AudioError(f"{utterance.describe()}: empty audio file")
    try:
        info = soundfile.info(_open(utterance))
    except (soundfile.LibsndfileError, RuntimeError, TypeError) as error:
        raise AudioError(f"{utterance.describe()}: cannot decode audio ({error})") from None
    if info.frames <= 0 or info.samplerate <= 0:
        raise AudioError(f"{utterance.describe()}: empty audio (no samples)")
    return info.frames / info.samplerate


def check_utterance(utterance: Utterance, max_seconds: float | None) -> float:
    """`audio_duration`, plus AudioError when it is longer than `max_seconds` (the model's window)."""
    duration = audio_duration(utterance)
    if max_seconds is not None and duration > max_seconds + 1e-3:
        raise AudioError(
            f"{utterance.describe()}: {duration:.1f} s of audio, longer than the model's {max_seconds:g} s window; "
            f"split it first (e.g. `sox IN.wav OUT.wav trim 0 {max_seconds:g} : newfile : restart`)")
    return duration


def load_audio(utterance: Utterance | str, sampling_rate: int = SAMPLING_RATE,
               max_seconds: float | None = None) -> np.ndarray:
    """The waveform of `utterance` (a path or an Utterance) as float32 mono at `sampling_rate` (resampled with soxr)."""
    import soundfile
    import soxr

    if isinstance(utterance, str):
        utterance = Utterance(utterance)
    check_utterance(utterance, max_seconds)
    try:
        samples, rate = soundfile.read(_open(utterance), dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError) as error:
        raise AudioError(f"{utterance.describe()}: cannot decode audio ({error})") from None
    samples = samples.mean(axis=1)  # channels mixed down to mono
    if samples.size == 0:
        raise AudioError(f"{utterance.describe()}: empty audio (no samples)")
    if rate != sampling_rate:
        samples = soxr.resample(samples, rate, sampling_rate, quality="HQ").astype(np.float32)
    return samples


# -- manifests ---------------------------------------------------------------------------------------------------

def _utterance(fields: dict[str, Any], where: str, base: Path, source_lang, target_lang) -> Utterance:
    unknown = sorted(set(fields) - set(MANIFEST_COLUMNS))
    if unknown:
        raise AudioError(f"{where}: unknown column(s) {', '.join(unknown)} (columns: {', '.join(MANIFEST_COLUMNS)})")
    audio = fields.get("audio")
    if not isinstance(audio, str) or not audio.strip():
        raise AudioError(f"{where}: no audio path")
    path = Path(audio)
    if not path.is_absolute():
        path = base / path
    text = fields.get("text")
    if text is not None and not isinstance(text, str):
        raise AudioError(f"{where}: 'text' must be a string, got {text!r}")
    return Utterance(str(path), text, fields.get("source_lang") or source_lang,
                     fields.get("target_lang") or target_lang or fields.get("source_lang") or source_lang, where)


def read_manifest(path: str | os.PathLike, source_lang: str | None = None,
                  target_lang: str | None = None) -> list[Utterance]:
    """The utterances of a TSV (with a header line) or JSONL manifest; `source_lang`/`target_lang` fill the rows
    that do not name their languages. AudioError names the file and line of any malformed row."""
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"manifest not found: {path}")
    base = path.parent
    utterances = []
    with open(path, encoding="utf-8", newline="") as lines:
        try:
            if path.suffix == ".jsonl":
                for number, line in enumerate(lines, 1):
                    if not line.strip():
                        continue
                    try:
                        row = json.loads(line)
                    except json.JSONDecodeError as error:
                        raise AudioError(f"{path}:{number}: not valid JSON ({error.msg})") from None
                    if not isinstance(row, dict):
                        raise AudioError(f"{path}:{number}: expected a JSON object with an 'audio' key")
                    utterances.append(_utterance(row, f"{path}:{number}", base, source_lang, target_lang))
            else:
                reader = csv.reader(lines, delimiter="\t", quoting=csv.QUOTE_NONE)
                header = next(reader, None)
                if not header or "audio" not in header or set(header) - set(MANIFEST_COLUMNS):
                    raise AudioError(f"{path}:1: the first line must name the columns ({', '.join(MANIFEST_COLUMNS)};"
                                     f" 'audio' required), got {header}")
                for row in reader:
                    where = f"{path}:{reader.line_num}"
                    if not row or row == [""]:
                        continue
                    if len(row) != len(header):
                        raise AudioError(f"{where}: {len(row)} column(s), the header has {len(header)} "
                                         f"({', '.join(header)})")
                    utterances.append(_utterance(dict(zip(header, row)), where, base, source_lang, target_lang))
        except UnicodeDecodeError as error:
            raise AudioError(f"{path}: not UTF-8 text ({error.reason})") from None
    return utterances


def read_audio_dataset(path: str | os.PathLike, audio_column: str = "audio", text_column: str = "text",
                       source_lang: str | None = None, target_lang: str | None = None) -> list[Utterance]:
    """The utterances of a local `datasets` directory (`save_to_disk`) with an `Audio` column (paths or bytes are
    read here, without torchcodec); `source_lang`/`target_lang` columns are used when present."""
    import datasets

    dataset = datasets.load_from_disk(str(path))
    if isinstance(dataset, datasets.DatasetDict):
        raise AudioError(f"{path}: a DatasetDict; give the directory of one split ({', '.join(dataset)})")
    for column in (audio_column, text_column):
        if column not in dataset.column_names:
            raise AudioError(f"{path}: no column {column!r} (columns: {', '.join(dataset.column_names)})")
    if isinstance(dataset.features[audio_column], datasets.Audio):
        dataset = dataset.cast_column(audio_column, datasets.Audio(decode=False))
    utterances = []
    for index, row in enumerate(dataset):
        audio = row[audio_column]
        if isinstance(audio, dict):
            audio = audio.get("bytes") or audio.get("path")
        if not audio:
            raise AudioError(f"{path}[{index}]: no audio")
        utterances.append(Utterance(audio, row[text_column], row.get("source_lang") or source_lang,
                                    row.get("target_lang") or target_lang or row.get("source_lang") or source_lang,
                                    f"{path}[{index}]"))
    return utterances


def read_audio_inputs(paths: list[str], source_lang: str | None = None,
                      target_lang: str | None = None) -> list[Utterance]:
    """Utterances of a list of audio files, manifests (.tsv/.jsonl) or `datasets` directories, in order."""
    utterances = []
    for path in paths:
        if os.path.isdir(path):
            utterances += read_audio_dataset(path, source_lang=source_lang, target_lang=target_lang)
        elif path.endswith((".tsv", ".jsonl")):
            utterances += read_manifest(path, source_lang, target_lang)
        else:
            utterances.append(Utterance(path, None, source_lang, target_lang, path))
    return utterances


def is_audio_input(paths: list[str] | None) -> bool:
    """Whether `pasero-decode -i` names audio: audio files, manifests or datasets rather than text files."""
    return bool(paths) and all(
        p.lower().endswith((*AUDIO_EXTENSIONS, ".tsv", ".jsonl")) or os.path.isdir(p) for p in paths)


# -- features ----------------------------------------------------------------------------------------------------

def window_seconds(feature_extractor) -> float:
    """Seconds of audio the model sees at once (Whisper: 30)."""
    return feature_extractor.n_samples / feature_extractor.sampling_rate


def check_utterances(utterances: list[Utterance], feature_extractor) -> list[float]:
    """Durations of every utterance, after checking them all (before any training or decoding starts)."""
    limit = window_seconds(feature_extractor)
    return [check_utterance(utterance, limit) for utterance in utterances]


def features_dataset(utterances: list[Utterance], feature_extractor):
    """A `datasets.Dataset` of the utterances whose rows, when read, carry `input_features` (mel features padded to
    the model's window, as Whisper was trained) computed from the resampled audio."""
    import datasets

    table = datasets.Dataset.from_dict({
        "index": list(range(len(utterances))),
    })
    rate = feature_extractor.sampling_rate
    limit = window_seconds(feature_extractor)

    def extract(batch: dict[str, list]) -> dict[str, Any]:
        waves = [load_audio(utterances[i], rate, limit) for i in batch["index"]]
        features = feature_extractor(waves, sampling_rate=rate, padding="max_length", return_tensors="np")
        return {"index": batch["index"], "input_features": features["input_features"]}

    return table.with_transform(extract)
