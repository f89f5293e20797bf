"""Serving throughput: `pasero-serve` with dynamic batching against the same server decoding one request at a time
(`--no-batching`), in the same run, with 1, 4 and 16 concurrent clients sending Bible test sentences (one per
request) to a converted original-Pasero model (the bundled tiny one unless `--checkpoint` names another).

    python benchmarks/bench_serve.py                                   # tiny fixture, greedy and beam 5
    python benchmarks/bench_serve.py --checkpoint PASERO_MODEL_DIR     # its own section of RESULTS.md
    python benchmarks/bench_serve.py --lines 64 --clients 1 16 --no-update

Each server is a real `pasero-serve` process on loopback (its peak RSS is read from /proc); each client is a thread
with its own keep-alive HTTP connection that POSTs `/{model}/decode` with one sentence until the shared list of
sentences is exhausted. Outputs are compared with `pasero-decode`'s on the same lines with the same options.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import queue
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import markdown_table, record_bars, update_results  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
FIXTURE = REPO / "tests" / "fixtures" / "pasero-tiny-en-es"
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def reference_outputs(model_dir: Path, source: Path, beam_size: int, workdir: Path, threads: int) -> list[str]:
    """What `pasero-decode` writes for these lines with this beam size."""
    output = workdir / f"ref.beam{beam_size}.es"
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    subprocess.run([str(BIN / "pasero-decode"), str(model_dir), "-i", str(source), "-o", str(output), "-s", "en",
                    "-t", "es", "--beam-size", str(beam_size)], check=True, env=env, stderr=subprocess.DEVNULL)
    return output.read_text(encoding="utf-8").splitlines()


class Server:
    """A `pasero-serve` process on loopback."""

    def __init__(self, model_dir: Path, batching: bool, threads: int, batch_wait_ms: float | None = None):
        self.port = free_port()
        command = [str(BIN / "pasero-serve"), f"{model_dir}:cpu", "--port", str(self.port), "--log-level", "warning",
                   "--max-concurrent-requests", "256"]
        if not batching:
            command.append("--no-batching")
        elif batch_wait_ms is not None:
            command += ["--batch-wait-ms", str(batch_wait_ms)]
        env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
        self.process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 180
        while True:
            try:
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                connection.request("GET", "/health")
                if connection.getresponse().status == 200:
                    break
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"pasero-serve did not start: {self.process.stderr.read()}") from None
                time.sleep(0.5)

    def peak_rss_mb(self) -> float:
        with open(f"/proc/{self.process.pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        return float("nan")

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=60)


def run_load(port: int, model: str, sentences: list[str], clients: int, beam_size: int) -> dict:
    """`clients` threads send the sentences (one per request) until none are left; latencies, outputs, errors."""
    todo: queue.Queue = queue.Queue()
    for index, sentence in enumerate(sentences):
        todo.put((index, sentence))
    outputs: list[str | None] = [None] * len(sentences)
    latencies: list[float] = []
    tokens = [0]
    errors: list[str] = []
    lock = threading.Lock()

    def client() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
        while True:
            try:
                index, sentence = todo.get_nowait()
            except queue.Empty:
                break
            body = json.dumps({"input": [sentence], "beam_size": beam_size, "source_lang": "en", "target_lang": "es"})
            start = time.perf_counter()
            try:
                connection.request("POST", f"/{model}/decode", body=body,
                                   headers={"Content-Type": "application/json"})
                response = connection.getresponse()
                payload = json.loads(response.read())
            except (OSError, http.client.HTTPException, ValueError) as error:
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
                with lock:
                    errors.append(repr(error))
                continue
            elapsed = time.perf_counter() - start
            with lock:
                if response.status != 200:
                    errors.append(f"{response.status}: {payload}")
                    continue
                latencies.append(elapsed)
                outputs[index] = payload["detok"][0]
                tokens[0] += len(payload["tokens"][0])
        connection.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - start
    return {"wall": wall, "latencies": latencies, "outputs": outputs, "tokens": tokens[0], "errors": errors}


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", type=Path, default=FIXTURE,
                        help="original Pasero checkpoint directory, en-es (default: the bundled tiny fixture)")
    parser.add_argument("--lines", type=int, default=48, help="Bible test lines sent per measurement")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--beam-sizes", type=int, nargs="+", default=[1, 5])
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the server (and pasero-decode)")
    parser.add_argument("--batch-wait-ms", type=float, help="the batched server's --batch-wait-ms (default: its own)")
    parser.add_argument("--no-update", action="store_true", help="print the table without updating RESULTS.md")
    args = parser.parse_args()

    from pasero_hf.data.sample_data import bible_en_es_dir
    from pasero_hf.models.pasero.convert_pasero_checkpoint import convert_pasero_checkpoint

    with open(bible_en_es_dir() / "test.en", encoding="utf-8") as file:
        sentences = [line.strip() for line in file][: args.lines]
    rows, bars = [], []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        model_dir = convert_pasero_checkpoint(args.checkpoint, workdir / "model")
        source = workdir / "test.en"
        source.write_text("\n".join(sentences) + "\n", encoding="utf-8")
        references = {beam: reference_outputs(model_dir, source, beam, workdir, args.threads)
                      for beam in args.beam_sizes}
        results: dict[tuple, dict] = {}
        for batching in (True, False):
            server = Server(model_dir, batching, args.threads, args.batch_wait_ms)
            try:
                run_load(server.port, "model", sentences[:8], 4, 1)  # warm-up
                for beam in args.beam_sizes:
                    for clients in args.clients:
                        print(f"batching={batching} beam={beam} clients={clients}", file=sys.stderr, flush=True)
                        results[batching, beam, clients] = run_load(server.port, "model", sentences, clients, beam)
                rss = server.peak_rss_mb()
            finally:
                server.close()
            for key, result in results.items():
                if key[0] == batching:
                    result["rss"] = rss
        for beam in args.beam_sizes:
            for clients in args.clients:
                base = results[False, beam, clients]
                base_rps = len(base["latencies"]) / base["wall"]
                for batching in (True, False):
                    result = results[batching, beam, clients]
                    rps = len(result["latencies"]) / result["wall"]
                    identical = sum(out == ref for out, ref in zip(result["outputs"], references[beam]))
                    latencies_ms = [1000 * value for value in result["latencies"]]
                    rows.append([
                        "greedy" if beam == 1 else f"beam {beam}", clients,
                        "dynamic batching" if batching else "one at a time", rps,
                        result["tokens"] / result["wall"], f"{rps / base_rps:.2f}x",
                        percentile(latencies_ms, 50), percentile(latencies_ms, 95), percentile(latencies_ms, 99),
                        len(result["errors"]), f"{identical}/{len(sentences)}", result["rss"],
                    ])
                    if batching and clients == max(args.clients):
                        search = "greedy" if beam == 1 else f"beam {beam}"
                        bars.append((f"serving {search}, {clients} clients: batched vs one at a time", ">= 4x req/s",
                                     f"{rps / base_rps:.2f}x ({rps:.1f} vs {base_rps:.1f} req/s)",
                                     rps / base_rps >= 4))
                        bars.append((f"serving {search}, {clients} clients: errors, outputs = pasero-decode",
                                     f"0, {len(sentences)}/{len(sentences)}",
                                     f"{len(result['errors'])}, {identical}/{len(sentences)}",
                                     not result["errors"] and identical == len(sentences)))
    headers = ["search", "clients", "server", "req/s", "target tok/s", "vs one at a time", "p50 ms", "p95 ms",
               "p99 ms", "errors", "outputs = pasero-decode", "server peak RSS MiB"]
    table = markdown_table(headers, rows)
    load = os.getloadavg()
    notes = (
        f"{len(sentences)} Bible test lines per measurement, one sentence per request (POST /MODEL/decode), "
        f"`{args.checkpoint.name}` converted, model defaults otherwise (max 100 output tokens); server with "
        f"{args.threads} torch thread(s), clients are threads of the benchmark process with keep-alive connections. "
        "'one at a time': the same server with `--no-batching`. Latencies are per request, queueing included. "
        f"Load average at the end: {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} on {os.cpu_count()} cores "
        "(a loaded machine slows both servers alike; the ratios are the numbers to read)."
    )
    print(table)
    print(notes)
    if not args.no_update:
        section = "serving" if args.checkpoint == FIXTURE else f"serving, {args.checkpoint.name}"
        update_results(section, table + "\n\n" + notes, command="python benchmarks/bench_serve.py " +
                       " ".join(sys.argv[1:]))
        record_bars(section, bars)


if __name__ == "__main__":
    main()
