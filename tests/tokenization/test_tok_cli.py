"""The streaming CLIs as real subprocesses: line alignment, files or pipes, no torch/transformers import."""

import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent


def run(name: str, *args: str, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / name), *args], input=stdin, capture_output=True, text=True, encoding="utf-8", check=True
    )


def test_tokenize_pipe_matches_reference_and_keeps_empty_lines(bible_dir, models_dir, read_lines):
    source = read_lines(bible_dir / "valid.en")[:50]
    reference = read_lines(models_dir / "reference" / "TED-top20.valid.en.tok")[:50]
    source.insert(3, "")
    reference.insert(3, "")
    source.insert(10, "   \t ")
    reference.insert(10, "")
    result = run("pasero-tokenize", str(models_dir / "TED-top20" / "bpecodes"), stdin="\n".join(source) + "\n")
    assert result.stdout.split("\n")[:-1] == reference


def test_tokenize_files_and_detokenize(tmp_path, edge_dir, models_dir, read_lines):
    output = tmp_path / "out.tok"
    run(
        "pasero-tokenize",
        str(models_dir / "ParaCrawl-fr-en" / "bpecodes"),
        "-i",
        str(edge_dir / "edge.txt"),
        "-o",
        str(output),
        "--progress",
    )
    assert read_lines(output) == read_lines(edge_dir / "edge.ParaCrawl-fr-en.tok")
    detok = tmp_path / "out.detok"
    run("pasero-detokenize", "-i", str(output), "-o", str(detok))
    tokenized = read_lines(output)
    for tokens, ours, original in zip(
        tokenized, read_lines(detok), read_lines(edge_dir / "edge.ParaCrawl-fr-en.detok"), strict=True
    ):
        if tokens == "<lang:fr>":
            assert ours == ""  # like the original CLI, leading language/domain tags are dropped
        else:
            assert ours == original


def test_tokenize_threads_give_the_same_lines_in_order(bible_dir, models_dir, read_lines, tmp_path):
    """--threads N splits the input into blocks tokenized in parallel, the workers passing each other the words
    they encoded: the output is the single-process one, in input order (5,000 lines: about ten 64 KB blocks, two in
    flight per worker, with empty lines and a vocabulary)."""
    source = read_lines(bible_dir / "train.en")[:4000] + read_lines(bible_dir / "train.es")[:1000]
    source[2500] = ""
    (tmp_path / "in.txt").write_text("\n".join(source) + "\n", encoding="utf-8")
    model = models_dir / "bible-en-es-8k"
    common = [str(model / "bpecodes"), "--vocabulary", str(model / "dict.txt"), "-i", str(tmp_path / "in.txt")]
    single = run("pasero-tokenize", *common).stdout
    run("pasero-tokenize", *common, "--threads", "3", "-o", str(tmp_path / "out.tok"))
    assert (tmp_path / "out.tok").read_text(encoding="utf-8") == single
    assert single.count("\n") == 5000 and single.split("\n")[2500] == ""
    bad = subprocess.run([str(BIN / "pasero-tokenize"), str(model / "bpecodes"), "--threads", "0"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "--threads must be >= 1" in bad.stderr


def test_tokenize_with_vocabulary(bible_dir, edge_dir, models_dir, read_lines):
    model = models_dir / "bible-en-es-8k"
    result = run(
        "pasero-tokenize",
        str(model / "bpecodes"),
        "--vocabulary",
        str(model / "dict.txt"),
        "-i",
        str(bible_dir / "test.en"),
    )
    assert result.stdout.split("\n")[:-1] == read_lines(edge_dir / "bible-en-es-8k.vocab.test.en.tok")


def test_detokenize_drops_leading_tags():
    result = run("pasero-detokenize", stdin="<lang:fr> ▁bon <T> jour ▁le ▁monde\n\n▁a <U>\n")
    assert result.stdout == "Bonjour le monde\n\nA\n"


def test_build_dict_from_tokenized_text():
    result = run("pasero-build-dict", "--dict-min-freq", "2", stdin="▁a ▁b ▁a\n\n▁a c\n")
    entries = [line.split() for line in result.stdout.splitlines()]
    assert entries[:8] == [
        ["<T>", "0"],
        ["<U>", "0"],
        ["<BT>", "0"],
        ["<PHL>", "0"],
        ["<mask>", "0"],
        ["▁", "4"],
        ["a", "3"],
        ["▁a", "3"],
    ]
    assert (len(entries) + 4) % 8 == 0


def test_bad_bpecodes_gives_clear_error(tmp_path):
    (tmp_path / "bpecodes").write_text("# {broken\n", encoding="utf-8")
    result = subprocess.run(
        [str(BIN / "pasero-tokenize"), str(tmp_path / "bpecodes")], input="x\n", capture_output=True, text=True
    )
    assert result.returncode != 0 and "bpecodes, line 1" in result.stderr


def test_interrupted_output_leaves_no_partial_file(tmp_path, models_dir):
    result = subprocess.run(
        [
            str(BIN / "pasero-tokenize"),
            str(models_dir / "TED-de-en" / "bpecodes"),
            "-i",
            str(tmp_path / "missing"),
            "-o",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0 and "missing" in result.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "name", ["pasero-tokenize", "pasero-detokenize", "pasero-build-dict", "pasero-build-tokenizer"]
)
def test_light_clis_import_neither_torch_nor_transformers(name, models_dir):
    args = [str(models_dir / "TED-de-en" / "bpecodes")] if name == "pasero-tokenize" else []
    if name == "pasero-build-tokenizer":
        args = ["--help"]
    result = subprocess.run(
        [sys.executable, "-X", "importtime", str(BIN / name), *args],
        input="Hello\n",
        capture_output=True,
        text=True,
        check=True,
    )
    imported = {line.split("|")[-1].strip().split(".")[0] for line in result.stderr.splitlines() if "|" in line}
    assert "pasero_hf" in imported
    assert not imported & {"torch", "transformers"}


def test_undecodable_bytes_pass_through_on_request(models_dir):
    result = subprocess.run(
        [str(BIN / "pasero-tokenize"), str(models_dir / "TED-de-en" / "bpecodes"), "--errors", "surrogateescape"],
        input=b"caf\xe9 Bar\n\nok\n",
        capture_output=True,
        check=True,
    )
    lines = result.stdout.split(b"\n")[:-1]
    assert len(lines) == 3 and lines[1] == b"" and b"\xe9" in lines[0] and b"<T>" in lines[0]


@pytest.mark.parametrize("command", ["pasero-tokenize", "pasero-detokenize", "pasero-build-dict"])
def test_non_utf8_binary_or_compressed_input_is_an_error_with_file_and_line(models_dir, tmp_path, command):
    bpe = [str(models_dir / "TED-de-en" / "bpecodes")] if command == "pasero-tokenize" else []
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes(b"ok\ncaf\xe9\n")
    xz = Path(__file__).resolve().parents[2] / "recipes" / "data" / "bible-en-es" / "test.en.xz"
    for path, message in ((latin1, f"{latin1}:2: not UTF-8 text (byte 0xe9)"), (xz, f"{xz}:1: not UTF-8 text")):
        result = subprocess.run([str(BIN / command), *bpe, "-i", str(path), "-o", str(tmp_path / "out")],
                                capture_output=True, text=True)
        assert result.returncode == 1 and message in result.stderr, result.stderr
        assert "Traceback" not in result.stderr and not (tmp_path / "out").exists()  # no half-written output
    replaced = subprocess.run([str(BIN / command), *bpe, "-i", str(latin1), "--errors", "replace"],
                              capture_output=True, text=True, check=True)
    assert "\ufffd" in replaced.stdout or command == "pasero-build-dict"  # (a count-1 token is below its threshold)


def test_missing_bpecodes_is_one_line(tmp_path):
    result = subprocess.run([str(BIN / "pasero-tokenize"), str(tmp_path / "bpecodes")], input="hi\n",
                            capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stderr.strip() == f"error: BPE codes file not found: {tmp_path / 'bpecodes'}"


def test_build_tokenizer_refuses_compressed_input_with_file_and_line(tmp_path):
    xz = Path(__file__).resolve().parents[2] / "recipes" / "data" / "bible-en-es" / "test.en.xz"
    result = subprocess.run([str(BIN / "pasero-build-tokenizer"), "-i", str(xz), "-o", str(tmp_path / "bpecodes"),
                             "-d", str(tmp_path / "dict.txt"), "-s", "10"], capture_output=True, text=True)
    assert result.returncode == 1 and f"error: {xz}:1: not UTF-8 text (byte 0xfd)" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "bpecodes").exists()


@pytest.mark.parametrize("threads", ["1", "2"])
def test_bad_line_after_many_blocks_names_its_line_and_writes_nothing(bible_dir, models_dir, read_lines, tmp_path,
                                                                      threads):
    """Input is read and checked in blocks: a bad byte or NUL deep in a file still names its own line (the earlier of
    the two when a block holds both), the worker processes stop, and no output file is left."""
    lines = [line.encode("utf-8") for line in read_lines(bible_dir / "train.en")[:3000]]
    bad = tmp_path / "bad.txt"
    for number, damaged, message in ((2001, b"caf\xe9", "not UTF-8 text (byte 0xe9)"),
                                     (2500, b"a\0b", "binary data (NUL byte)")):
        content = lines[:number - 1] + [damaged] + lines[number - 1:]
        if number == 2001:  # a NUL later in the same block comes second
            content[number + 5] = b"x\0y"
        bad.write_bytes(b"\n".join(content) + b"\n")
        result = subprocess.run([str(BIN / "pasero-tokenize"), str(models_dir / "bible-en-es-8k" / "bpecodes"), "-i",
                                 str(bad), "-o", str(tmp_path / "out"), "--threads", threads],
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 1 and f"{bad}:{number}: {message}" in result.stderr, result.stderr
        assert "Traceback" not in result.stderr and not (tmp_path / "out").exists()
        assert sorted(path.name for path in tmp_path.iterdir()) == ["bad.txt"]


def test_tokenize_thread_workers_keep_their_cache_bounded(models_dir, read_lines, bible_dir, monkeypatch):
    """A --threads worker adds the encodings other workers send it to its cache: these count against the same bound
    as its own look-ups (a long file must not grow a worker's memory without limit), and its output is unchanged."""
    import threading
    from multiprocessing import Pipe

    from pasero_hf.tokenization import bpe as bpe_module
    from pasero_hf.tokenization.parallel import _work

    monkeypatch.setattr(bpe_module, "_MAX_CACHE_SIZE", 50)
    model = bpe_module.PaseroBPE.from_file(models_dir / "bible-en-es-8k" / "bpecodes")
    lines = read_lines(bible_dir / "train.en")[:2]
    known = [(f"chunk{i}", f"▁chunk {i}") for i in range(120)]  # as if encoded by another worker
    expected = bpe_module.PaseroBPE.from_file(models_dir / "bible-en-es-8k" / "bpecodes").tokenize_to_strings(lines)
    ours, theirs = Pipe()
    worker = threading.Thread(target=_work, args=(model, None, theirs))
    worker.start()
    sizes = []
    for index in range(3):
        ours.send((index, lines, known))
        _, output, _ = ours.recv()
        assert output == expected
        sizes.append(len(model._joined_cache(None)))
    ours.send(None)
    worker.join(timeout=30)
    assert max(sizes) <= 50, sizes
