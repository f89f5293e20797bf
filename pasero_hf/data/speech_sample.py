"""A small speech corpus made from the bundled text: sentences of the Bible (en, es) and iso-codes (fr, de) spoken
by espeak-ng (Debian package `espeak-ng`), stored at several sample rates and formats with sox (`sox`), and
manifests for transcription and translation. Used by the tests and the README's speech example.

    python -m pasero_hf.data.speech_sample data/speech-sample
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

from pasero_hf.data.sample_data import SAMPLE_DATA_DIR, bible_en_es_dir

# (clip name, spoken language, where its text comes from, output format: rate, channels, extension)
CLIPS = (
    ("en-ate", "en", ("bible", "valid", 1), (22050, 1, "wav")),
    ("en-farmer", "en", ("bible", "valid", 0), (16000, 1, "flac")),
    ("es-ate", "es", ("bible", "valid", 1), (44100, 2, "mp3")),
    ("fr-germany", "fr", ("iso", "Germany"), (8000, 1, "wav")),
    ("de-spain", "de", ("iso", "Spain"), (16000, 1, "wav")),
)


def _text(lang: str, source: tuple) -> tuple[str, str]:
    """(text in `lang`, its English version)."""
    if source[0] == "bible":
        directory = bible_en_es_dir()
        lines = {side: (directory / f"{source[1]}.{side}").read_text(encoding="utf-8").splitlines()
                 for side in ("en", "es")}
        short = [i for i, line in enumerate(lines["en"]) if len(line.split()) <= 7]
        index = short[source[2]]
        return lines[lang][index], lines["en"][index]
    corpus = SAMPLE_DATA_DIR / "iso-codes" / f"en-{lang}"
    english = (corpus / "train.en").read_text(encoding="utf-8").splitlines()
    other = (corpus / f"train.{lang}").read_text(encoding="utf-8").splitlines()
    return other[english.index(source[1])], source[1]


def require_tools() -> None:
    missing = [tool for tool in ("espeak-ng", "sox") if shutil.which(tool) is None]
    if missing:
        raise RuntimeError(f"{' and '.join(missing)} not found: install the Debian packages "
                           f"(apt-get install espeak-ng sox libsox-fmt-mp3)")


def speak(text: str, lang: str, path: Path, rate: int = 16000, channels: int = 1) -> Path:
    """`text` spoken by espeak-ng in `lang`, converted by sox to `path` (format from its extension)."""
    require_tools()
    raw = path.with_name(f".{path.stem}.espeak.wav")
    subprocess.run(["espeak-ng", "-v", lang, "-s", "230", "-w", str(raw), text], check=True, capture_output=True)
    subprocess.run(["sox", str(raw), "-r", str(rate), "-c", str(channels), str(path)], check=True, capture_output=True)
    raw.unlink()
    return path


def make_speech_sample(output_dir: str | os.PathLike) -> Path:
    """Write `clips/*` and the manifests `transcribe.tsv` (every clip, its own language), `translate.tsv` (the
    non-English clips, into English) and `train.tsv` (both) to `output_dir`; returns it."""
    output_dir = Path(output_dir)
    (output_dir / "clips").mkdir(parents=True, exist_ok=True)
    transcribe, translate = [], []
    for name, lang, source, (rate, channels, extension) in CLIPS:
        text, english = _text(lang, source)
        clip = Path("clips") / f"{name}.{extension}"
        if not (output_dir / clip).is_file():
            speak(text, lang, output_dir / clip, rate, channels)
        transcribe.append(f"{clip}\t{text}\t{lang}\t{lang}")
        if lang != "en":
            translate.append(f"{clip}\t{english}\t{lang}\ten")
    header = "\t".join(("audio", "text", "source_lang", "target_lang"))
    for name, rows in (("transcribe", transcribe), ("translate", translate), ("train", transcribe + translate)):
        (output_dir / f"{name}.tsv").write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return output_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("output_dir", help="directory of the clips and manifests")
    args = parser.parse_args(argv)
    try:
        output = make_speech_sample(args.output_dir)
    except (RuntimeError, subprocess.CalledProcessError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"speech sample: {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
