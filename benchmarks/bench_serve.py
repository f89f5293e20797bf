"""Serving throughput: `pasero-serve` with dynamic batching against the same server decoding one request at a time
(`--no-batching`), in the same run, with 1, 4 and 16 concurrent clients sending Bible test sentences (one per
request) to a converted original-Pasero model (the bundled tiny one unless `--checkpoint` names another).

    python benchmarks/bench_serve.py                                   # tiny fixture, greedy and beam 5
    python benchmarks/bench_serve.py --checkpoint PASERO_MODEL_DIR     # its own section of RESULTS.md
    python benchmarks/bench_serve.py --lines 64 --clients 1 16 --rounds 3 --no-update

Each server is a real `pasero-serve` process on loopback (its peak RSS and CPU time are read from /proc); each client
is a thread with its own keep-alive HTTP connection that POSTs `/{model}/decode` with one sentence until the shared
list of sentences is exhausted. Both servers run side by side and each measurement is paired: the batched and the
one-at-a-time server take turns (which goes first alternates between rounds), so that a shared machine's load weighs
on both alike; ratios are medians of the per-round ratios. Besides wall-clock requests/s, the servers' CPU seconds
per request are reported: on a loaded machine they are what an idle one would turn into throughput (one torch thread).
Outputs are compared with `pasero-decode`'s on the same lines with the same options.
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
                   "--max-concurrent-requests", "256", "--request-timeout", "600"]  # one at a time queues long
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

    def cpu_seconds(self) -> float:
        """User + system CPU time of the server process so far."""
        with open(f"/proc/{self.process.pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

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


def rate(run: dict) -> float:
    return len(run["latencies"]) / run["wall"]


def cpu_per_request(run: dict) -> float:
    return run["cpu"] / max(1, len(run["latencies"]))


def median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def spread(ratios: list[float]) -> str:
    return f"{median(ratios):.2f}x ({min(ratios):.2f}-{max(ratios):.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", type=Path, default=FIXTURE,
                        help="original Pasero checkpoint directory, en-es (default: the bundled tiny fixture)")
    parser.add_argument("--lines", type=int, default=48, help="Bible test lines sent per measurement")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--beam-sizes", type=int, nargs="+", default=[1, 5])
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the server (and pasero-decode)")
    parser.add_argument("--batch-wait-ms", type=float, help="the batched server's --batch-wait-ms (default: its own)")
    parser.add_argument("--rounds", type=int, default=2, help="paired rounds (batched and unbatched take turns)")
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
        servers = {batching: Server(model_dir, batching, args.threads, args.batch_wait_ms)
                   for batching in (True, False)}
        results: dict[tuple, list[dict]] = {}
        try:
            for server in servers.values():
                run_load(server.port, "model", sentences[:8], 4, 1)  # warm-up
            for round_ in range(args.rounds):
                for beam in args.beam_sizes:
                    for clients in args.clients:
                        order = (True, False) if round_ % 2 == 0 else (False, True)
                        for batching in order:
                            print(f"round {round_ + 1}/{args.rounds} batching={batching} beam={beam} "
                                  f"clients={clients}", file=sys.stderr, flush=True)
                            server = servers[batching]
                            cpu = server.cpu_seconds()
                            result = run_load(server.port, "model", sentences, clients, beam)
                            result["cpu"] = server.cpu_seconds() - cpu
                            results.setdefault((batching, beam, clients), []).append(result)
            rss = {batching: server.peak_rss_mb() for batching, server in servers.items()}
        finally:
            for server in servers.values():
                server.close()
        for beam in args.beam_sizes:
            for clients in args.clients:
                pairs = list(zip(results[True, beam, clients], results[False, beam, clients]))
                wall_ratios = [rate(batched) / rate(alone) for batched, alone in pairs]
                cpu_ratios = [cpu_per_request(alone) / cpu_per_request(batched) for batched, alone in pairs]
                for batching in (True, False):
                    runs = results[batching, beam, clients]
                    latencies_ms = [1000 * value for run in runs for value in run["latencies"]]
                    identical = min(sum(out == ref for out, ref in zip(run["outputs"], references[beam]))
                                    for run in runs)
                    errors = sum(len(run["errors"]) for run in runs)
                    rows.append([
                        "greedy" if beam == 1 else f"beam {beam}", clients,
                        "dynamic batching" if batching else "one at a time", median([rate(run) for run in runs]),
                        median([run["tokens"] / run["wall"] for run in runs]),
                        spread(wall_ratios) if batching else "1.00x",
                        median([1000 * cpu_per_request(run) for run in runs]),
                        spread(cpu_ratios) if batching else "1.00x",
                        percentile(latencies_ms, 50), percentile(latencies_ms, 95), percentile(latencies_ms, 99),
                        errors, f"{identical}/{len(sentences)}", rss[batching],
                    ])
                    if batching and clients == max(args.clients):
                        search = "greedy" if beam == 1 else f"beam {beam}"
                        wall, cpu_ratio = median(wall_ratios), median(cpu_ratios)
                        alone_rate = median([rate(run) for run in results[False, beam, clients]])
                        bars.append((f"serving {search}, {clients} clients: batched vs one at a time", ">= 4x req/s",
                                     f"{wall:.2f}x wall, paired ({median([rate(run) for run in runs]):.1f} vs "
                                     f"{alone_rate:.1f} req/s); {cpu_ratio:.2f}x CPU time per request",
                                     wall >= 4))
                        bars.append((f"serving {search}, {clients} clients: errors, outputs = pasero-decode",
                                     f"0, {len(sentences)}/{len(sentences)}",
                                     f"{errors}, {identical}/{len(sentences)}",
                                     not errors and identical == len(sentences)))
    headers = ["search", "clients", "server", "req/s", "target tok/s", "vs one at a time (wall, paired)",
               "server CPU ms/request", "vs one at a time (CPU)", "p50 ms", "p95 ms", "p99 ms", "errors",
               "outputs = pasero-decode (worst round)", "server peak RSS MiB"]
    table = markdown_table(headers, rows)
    load = os.getloadavg()
    notes = (
        f"{len(sentences)} Bible test lines per measurement, {args.rounds} paired rounds (medians; ratios: median "
        "(min-max) of the per-round ratios), one sentence per request (POST /MODEL/decode), "
        f"`{args.checkpoint.name}` converted, model defaults otherwise (max 100 output tokens); server with "
        f"{args.threads} torch thread(s), clients are threads of the benchmark process with keep-alive connections. "
        "'one at a time': the same server with `--no-batching`, running beside it. Latencies are per request, "
        "queueing included; CPU: the server process's user + system time per request. "
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
