"""Dynamic batching: which queued requests share a batch (the worker's batch assembly, with real timing)."""

import asyncio
import threading
import time

import pytest

from pasero_hf.serving import ServerLimits
from pasero_hf.serving.metrics import Metrics
from pasero_hf.serving.worker import Job, ModelWorker

GAP = 0.08  # seconds between requests: more than the 50 ms window


@pytest.fixture()
def worker(pasero_generator):
    return ModelWorker("tiny", pasero_generator, "cpu", ServerLimits(batch_wait_ms=50), Metrics())


def submit_spread(worker: ModelWorker, count: int) -> threading.Thread:
    loop = asyncio.new_event_loop()

    def submit():
        for index in range(count):
            if index:
                time.sleep(GAP)
            worker.submit(Job([f"sentence {index}"], {}, {"beam_size": 1}, 3, loop.create_future()))

    thread = threading.Thread(target=submit)
    thread.start()
    return thread


def test_batch_waits_for_the_clients_it_just_answered(worker):
    # a batch of 3 was just answered: its clients come back 80 ms apart, and the next batch waits for all of them
    worker._answered_at, worker._answered, worker._last_duration = time.monotonic(), 3, 0.1
    thread = submit_spread(worker, 3)
    batch = worker._next_batch()
    thread.join()
    assert [job.inputs for job in batch] == [["sentence 0"], ["sentence 1"], ["sentence 2"]]


def test_without_returning_clients_the_window_closes(worker):
    # nothing was answered before: requests 80 ms apart do not keep a 50 ms window open
    thread = submit_spread(worker, 3)
    first = worker._next_batch()
    thread.join()
    assert [job.inputs for job in first] == [["sentence 0"]]
    # requests already waiting in the queue share the next batch
    assert [job.inputs for job in worker._next_batch()] == [["sentence 1"], ["sentence 2"]]
