"""`pasero-decode` as users run it: a real subprocess on real files (tiny NLLB-layout model)."""

import io
import os
import signal
import subprocess
import sys
import time

import pytest

from pasero_hf.cli.decode import main
from pasero_hf.metrics import corpus_scores


def pasero_decode(*args, stdin=None, check=True):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "pasero_hf.cli.decode", *map(str, args)]
    result = subprocess.run(command, input=stdin, capture_output=True, text=True, env=env, timeout=120)
    if check and result.returncode != 0:
        raise AssertionError(f"pasero-decode failed ({result.returncode}):\n{result.stderr}")
    return result


@pytest.fixture()
def corpus(bible_dir, tmp_path):
    sources = (bible_dir / "test.en").read_text(encoding="utf-8").splitlines()[:10]
    refs = (bible_dir / "test.es").read_text(encoding="utf-8").splitlines()[:10]
    (tmp_path / "test.eng_Latn").write_text("\n".join(sources) + "\n", encoding="utf-8")
    (tmp_path / "test.spa_Latn").write_text("\n".join(refs) + "\n", encoding="utf-8")
    (tmp_path / "test.fra_Latn").write_text("\n".join(refs) + "\n", encoding="utf-8")  # a reference to score against
    return tmp_path, sources, refs


def test_files_references_and_several_corpora(nllb_dir, nllb_generator, corpus):
    directory, sources, refs = corpus
    result = pasero_decode(
        nllb_dir, "-e", directory / "test", "-l", "eng_Latn-spa_Latn", "eng_Latn-fra_Latn",
        "-o", directory / "out.{pair}", "--beam-size", "1", "--max-output-len", "12", "--buffer-size", "3",
    )
    spanish = (directory / "out.eng_Latn-spa_Latn").read_text(encoding="utf-8").split("\n")[:-1]
    french = (directory / "out.eng_Latn-fra_Latn").read_text(encoding="utf-8").split("\n")[:-1]
    expected = [n[0]["detok"] for n in nllb_generator.decode(
        *sources, source_lang="eng_Latn", target_lang="spa_Latn", beam_size=1, max_output_len=12
    )]
    assert spanish == expected and len(french) == 10 and french != spanish
    scores = corpus_scores(expected, refs)
    assert f"bleu {scores['bleu']:.2f} | chrf {scores['chrf']:.2f}" in result.stderr
    assert "average | bleu" in result.stderr


def test_stdin_line_by_line(nllb_dir, nllb_generator):
    lines = ["In the beginning.", "", "!max_output_len=3", "God said.", "!beam_sise=3", "And there was light."]
    result = pasero_decode(
        nllb_dir, "-s", "eng_Latn", "-t", "spa_Latn", "--buffer-size", "1", "--beam-size", "2", "--max-output-len",
        "8", stdin="\n".join(lines) + "\n",
    )

    def expected(sentences, max_output_len):
        return [n[0]["detok"] for n in nllb_generator.decode(
            *sentences, source_lang="eng_Latn", target_lang="spa_Latn", beam_size=2, max_output_len=max_output_len
        )]

    # "!name=value" lines change an option for the next lines; an invalid one is reported and ignored
    assert result.stdout.split("\n")[:-1] == expected(lines[:2], 8) + expected([lines[3], lines[5]], 3)
    assert "decoding option max_output_len set to 3" in result.stderr
    assert "unknown decoding option 'beam_sise'" in result.stderr


def test_repetition_penalty(nllb_dir, nllb_generator, corpus):
    directory, sources, _ = corpus
    result = pasero_decode(nllb_dir, "-i", directory / "test.eng_Latn", "-t", "spa_Latn", "--beam-size", "2",
                           "--max-output-len", "12", "--repetition-penalty", "1.5")

    def expected(**options):
        return [n[0]["detok"] for n in nllb_generator.decode(
            *sources, source_lang="eng_Latn", target_lang="spa_Latn", beam_size=2, max_output_len=12, **options)]

    assert result.stdout.split("\n")[:-1] == expected(repetition_penalty=1.5) != expected()


def run_main(capsys, *args):
    """The console script's entry point in this process (the error paths need no model start-up cost)."""
    with pytest.raises(SystemExit) as exit_info:
        main([str(arg) for arg in args])
    return exit_info.value.code, capsys.readouterr().err


def test_clear_errors(nllb_dir, tmp_path, capsys, monkeypatch):
    (tmp_path / "input.txt").write_text("hello\n")
    code, err = run_main(capsys, nllb_dir, "-i", tmp_path / "input.txt", "-t", "spa_Latn")
    assert code == 1
    assert "cannot infer the source language from the extension of" in err
    assert "give -s/--source-lang or -l/--lang-pairs" in err

    (tmp_path / "bad.eng_Latn").write_bytes(b"fine\nbroken \xc3\x28 text\n")
    code, err = run_main(capsys, nllb_dir, "-i", tmp_path / "bad.eng_Latn", "-t", "spa_Latn", "-o", tmp_path / "o")
    assert code == 1 and "bad.eng_Latn, line 2: invalid UTF-8" in err

    code, err = run_main(capsys, tmp_path / "no-model", "-s", "en", "-t", "es")
    assert code == 1 and "model directory not found" in err

    code, err = run_main(capsys, nllb_dir, "-i", tmp_path / "missing.eng_Latn", "-t", "spa_Latn")
    assert code == 1 and "file not found: " in err and "missing.eng_Latn" in err

    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"x\n")))
    code, err = run_main(capsys, nllb_dir, "-s", "eng_Latn", "-t", "tlh_Latn")
    assert code == 1 and "unknown target language 'tlh_Latn'" in err

    code, err = run_main(capsys, nllb_dir, "-s", "eng_Latn", "-t", "spa_Latn", "--beam-size", "0")
    assert code == 1 and "beam_size must be >= 1" in err

    code, err = run_main(capsys, nllb_dir, "-s", "eng_Latn", "-t", "spa_Latn", "--repetition-penalty", "0")
    assert code == 1 and "repeat_penalty must be > 0" in err

    code, err = run_main(capsys, nllb_dir, "-s", "eng_Latn", "-t", "spa_Latn", "--continue")
    assert code == 1 and "--continue needs -o/--output" in err

    code, err = run_main(capsys, nllb_dir, "-s", "eng_Latn", "-t", "spa_Latn", "--teacher-forcing")
    assert code == 1 and "--teacher-forcing needs references" in err


@pytest.mark.slow  # three model start-ups in subprocesses: ~15 s alone, ~35 s on a busy machine
def test_kill_and_continue_gives_the_uninterrupted_output(nllb_dir, bible_dir, tmp_path):
    lines = (bible_dir / "test.en").read_text(encoding="utf-8").splitlines()[:150]
    source = tmp_path / "long.eng_Latn"
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    options = ["-t", "spa_Latn", "--beam-size", "2", "--max-output-len", "20"]
    assert main([str(nllb_dir), "-i", str(source), "-o", str(tmp_path / "full.out"), *options, "--quiet"]) == 0
    full = (tmp_path / "full.out").read_text(encoding="utf-8")

    output = tmp_path / "resumed.out"
    partial = tmp_path / "resumed.out.partial"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "pasero_hf.cli.decode", str(nllb_dir), "-i", str(source), "-o", str(output),
         *options, "--buffer-size", "1"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 60
    while time.time() < deadline and process.poll() is None:
        if partial.exists() and partial.read_text(encoding="utf-8").count("\n") >= 20:
            break
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, "decoding finished before it could be interrupted"
    done = partial.read_text(encoding="utf-8").count("\n")
    assert 20 <= done < 150 and not output.exists()

    pasero_decode(nllb_dir, "-i", source, "-o", output, *options, "--continue")
    assert output.read_text(encoding="utf-8") == full


def test_unknown_target_language_and_empty_input(pasero_tiny_dir, tmp_path):
    """An en->es model without language codes cannot translate into French: say so instead of decoding Spanish;
    an empty input file is reported."""
    (tmp_path / "in.en").write_text("And God said.\n", encoding="utf-8")
    result = pasero_decode(pasero_tiny_dir, "-i", tmp_path / "in.en", "-t", "fr", "--quiet", check=False)
    assert result.returncode == 1 and "unknown target language 'fr': this model supports es" in result.stderr
    assert result.stdout == ""
    (tmp_path / "empty.en").write_text("", encoding="utf-8")
    result = pasero_decode(pasero_tiny_dir, "-i", tmp_path / "empty.en", "-t", "es", "--quiet")
    assert f"{tmp_path / 'empty.en'} is empty: nothing to decode" in result.stderr


def test_interactive_commands_change_options_for_the_next_lines(nllb_generator, capsys, caplog):
    """The CLI's line-by-line loop in this process: outputs appear per line, in Pasero's verbose format with -v; a
    `!name=value` line changes an option for the lines after it, an invalid one is logged and changes nothing."""
    from pasero_hf.cli.decode import decode_interactively
    from pasero_hf.generation.inference_corpus import InferenceCorpus

    corpus = InferenceCorpus(None, "eng_Latn", "spa_Latn")
    lines = ["In the beginning.", "!max_output_len=2", "In the beginning.", "!n_best=9", "God said.", ""]
    stream = io.BytesIO(("\n".join(lines) + "\n").encode("utf-8"))
    decode_interactively(nllb_generator, corpus, verbose=True, stream=stream)
    out = capsys.readouterr().out

    def hypothesis(sentence, **options):
        return nllb_generator.decode(sentence, source_lang="eng_Latn", target_lang="spa_Latn", **options)[0][0]

    ids = [line.split("\t")[0].split("-")[1] for line in out.splitlines() if line.startswith("D-")]
    detoks = [line.split("\t", 1)[1] for line in out.splitlines() if line.startswith("D-")]
    assert ids == ["0", "1", "2", "3"]
    assert detoks == [hypothesis("In the beginning.")["detok"], hypothesis("In the beginning.", max_output_len=2)["detok"],
                      hypothesis("God said.", max_output_len=2)["detok"], ""]
    assert len(hypothesis("In the beginning.", max_output_len=2)["tokens"]) <= 2
    assert out.startswith("S-0\t") and "\nA-0\t" in out  # verbose groups, with alignments
    assert "decoding option max_output_len set to 2" in caplog.text
    assert "n_best (9) cannot exceed beam_size (1)" in caplog.text
