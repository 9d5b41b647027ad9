"""Coalescing concurrent callers' work into batches (the pattern of ledger/group_commit.py).

A remote payment's cost is dominated by what is paid per step, not per payment: a transaction
(BEGIN, head lock, state reads, COMMIT) and, between the nodes, an HTTP request (client, server,
routing, threadpool hop). Both classes run `process(items) -> results` once for many callers'
items, one result per item, in order; a result that is an exception is raised to its own caller
only.

- `Batcher`: callers put their item and get a Future; `workers` threads each take whatever has
  queued (up to `max_batch`, and up to `max_weight` if items are weighed). For work that may
  outlive its caller (messages to a peer, whose answers follow in the background).
- `Combiner`: no thread of its own. A caller that finds no batch running runs one itself, with
  whatever has queued meanwhile; the others wait for it (flat combining). For work its caller
  waits for anyway (the payers' transactions): no hand-off to another thread when alone.
"""
from __future__ import annotations

import logging
import queue
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future

log = logging.getLogger("ayni.federation")


class Closed(Exception):
    """The batcher was shut down before the item was processed."""


class Batcher:
    def __init__(self, process: Callable[[list], list], *, max_batch: int = 64, workers: int = 1,
                 name: str = "ayni-batch", weight: Callable[[object], int] | None = None,
                 max_weight: int | None = None):
        self.process, self.max_batch, self.workers, self.name = process, max_batch, workers, name
        self.weight, self.max_weight = weight, max_weight
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._held = None  # an item taken that did not fit its batch: first of the next one
        self._take = threading.Lock()  # one worker drains the queue at a time
        self._threads: list[threading.Thread] = []
        self._start = threading.Lock()
        self._closed = False

    def put(self, item) -> Future:
        fut: Future = Future()
        if self._closed:
            fut.set_exception(Closed(f"{self.name} is shut down"))
            return fut
        self._ensure_started()  # lazily: a process that never sends starts no thread (and forks clean)
        self._queue.put((item, fut))
        return fut

    def _ensure_started(self) -> None:
        if len(self._threads) == self.workers:
            return
        with self._start:
            while len(self._threads) < self.workers:
                t = threading.Thread(target=self._run, name=f"{self.name}-{len(self._threads)}", daemon=True)
                t.start()
                self._threads.append(t)

    def _next_batch(self) -> list | None:
        with self._take:
            first = self._held if self._held is not None else self._queue.get()
            self._held = None
            if first is None:
                self._queue.put(None)  # let the other workers see it too
                return None
            batch, total = [first], self._weigh(first)
            while len(batch) < self.max_batch:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._queue.put(None)
                    break
                w = self._weigh(nxt)
                if self.max_weight is not None and total + w > self.max_weight:
                    self._held = nxt
                    break
                batch.append(nxt)
                total += w
            return batch

    def _weigh(self, entry) -> int:
        return self.weight(entry[0]) if self.weight is not None else 1

    def _run(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            items = [item for item, _ in batch]
            try:
                results = self.process(items)
            except Exception as exc:  # noqa: BLE001 - the whole batch failed: each caller hears why
                results = [exc] * len(items)
            for (_, fut), result in zip(batch, results):
                if isinstance(result, BaseException):
                    fut.set_exception(result)
                else:
                    fut.set_result(result)

    def close(self) -> None:
        self._closed = True
        self._queue.put(None)


class Combiner:
    def __init__(self, process: Callable[[list], list], *, max_batch: int = 64):
        self.process, self.max_batch = process, max_batch
        self._queue: deque = deque()
        self._queue_lock = threading.Lock()
        self._running = threading.Lock()  # held by the caller running a batch

    def run(self, item, timeout: float | None = None):
        """Process `item` (in a batch with others) and return its result, or raise its exception."""
        fut: Future = Future()
        with self._queue_lock:
            self._queue.append((item, fut))
        # Run batches while there is work and no one else runs them. The runner re-checks the
        # queue after releasing, so an item queued while it finished is never left waiting.
        while self._running.acquire(blocking=False):  # else the one running will take our item
            try:
                self._drain()
            finally:
                self._running.release()
            with self._queue_lock:
                if not self._queue:
                    break
        return fut.result(timeout)

    def _drain(self) -> None:
        while True:
            with self._queue_lock:
                batch = [self._queue.popleft() for _ in range(min(self.max_batch, len(self._queue)))]
            if not batch:
                return
            try:
                results = self.process([item for item, _ in batch])
            except Exception as exc:  # noqa: BLE001 - the whole batch failed: each caller hears why
                results = [exc] * len(batch)
            for (_, fut), result in zip(batch, results):
                if isinstance(result, BaseException):
                    fut.set_exception(result)
                else:
                    fut.set_result(result)

