"""`pasero-tokenize --threads N`: blocks of lines tokenized by N worker processes, output in input order.

A cold run spends much of its time encoding words seen for the first time. Each worker reports the chunk encodings
it computed with each block, and the next block sent to every other worker carries them: a chunk is encoded about
once in the whole run instead of once per process, so N processes do little more work than one.
"""

import multiprocessing
from collections.abc import Iterable, Iterator
from multiprocessing.connection import Connection, wait

from .bpe import PaseroBPE

# Blocks sent to a worker ahead of its results, so that it never waits for the main process.
_IN_FLIGHT = 2


def tokenize_in_processes(bpe: PaseroBPE, blocks: Iterable[list[str]], processes: int,
                          unk: str | None = None) -> Iterator[list[str]]:
    """`bpe.tokenize_to_strings(block, unk)` for each block, computed by `processes` worker processes, in order."""
    context = multiprocessing.get_context()
    workers: list[tuple[Connection, multiprocessing.Process]] = []
    finished = False
    try:
        for _ in range(processes):
            here, there = context.Pipe()
            process = context.Process(target=_work, args=(bpe, unk, there), daemon=True)
            process.start()
            there.close()
            workers.append((here, process))
        numbered = enumerate(blocks)
        shared: list[tuple[int, list[tuple[str, str]]]] = []  # (worker, chunk encodings it computed), as they came
        sent = [0] * processes  # how much of `shared` each worker has been sent
        busy = [0] * processes

        def submit(worker: int) -> None:
            for index, lines in numbered:  # the next block, if any
                known = [entry for owner, entries in shared[sent[worker]:] if owner != worker for entry in entries]
                sent[worker] = len(shared)
                workers[worker][0].send((index, lines, known))
                busy[worker] += 1
                return

        for worker in range(processes):
            for _ in range(_IN_FLIGHT):
                submit(worker)
        results: dict[int, list[str]] = {}
        next_index = 0
        owners = {conn: worker for worker, (conn, _) in enumerate(workers)}
        while any(busy):
            for conn in wait([conn for conn, worker in owners.items() if busy[worker]]):
                worker = owners[conn]
                index, output, computed = conn.recv()
                if index is None:
                    raise RuntimeError(f"pasero-tokenize worker failed: {output}")
                busy[worker] -= 1
                results[index] = output
                if computed:
                    shared.append((worker, computed))
                submit(worker)
            while next_index in results:
                yield results.pop(next_index)
                next_index += 1
            # what every worker has been sent is not needed any more
            if (done := min(sent)) > 1000:
                del shared[:done]
                sent = [count - done for count in sent]
        for conn, _ in workers:
            conn.send(None)
        finished = True
    finally:
        for conn, process in workers:
            if not finished:
                process.terminate()
            process.join()
            conn.close()


def _work(bpe: PaseroBPE, unk: str | None, conn: Connection) -> None:
    """Worker loop: (index, lines, chunk encodings from other workers) in, (index, output, new encodings) out."""
    cache = bpe._joined_cache(unk)
    try:
        while (task := conn.recv()) is not None:
            index, lines, known = task
            cache.merge(known)
            cache.added = []
            output = bpe.tokenize_to_strings(lines, unk=unk)
            conn.send((index, output, cache.added))
    except (EOFError, KeyboardInterrupt):  # the main process stopped: so does this one, quietly
        pass
    except Exception as error:  # noqa: BLE001 - reported by the main process, which stops
        conn.send((None, f"{type(error).__name__}: {error}", None))
