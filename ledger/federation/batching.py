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
  whatever has queued meanwhile; the others wait for it (flat combining). The runner returns
  once its own item is done and a waiting caller takes over: bounded work per caller. For work
  its caller waits for anyway (the payers' transactions): no hand-off to another thread when alone.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout

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
    """Flat combining with a bounded turn: the caller that runs batches returns as soon as its
    own item is done (it ran at most the batches queued before it), and hands the runner role
    to a waiting caller whose item is still queued. No caller works for others without end."""

    def __init__(self, process: Callable[[list], list], *, max_batch: int = 64):
        self.process, self.max_batch = process, max_batch
        self._queue: deque = deque()
        self._cond = threading.Condition()
        self._running = False  # a caller is running a batch

    def run(self, item, timeout: float | None = None):
        """Process `item` (in a batch with others) and return its result, or raise its exception
        (TimeoutError if it was not processed within `timeout`: it then never is)."""
        fut: Future = Future()
        entry = (item, fut)
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            self._queue.append(entry)
        while True:
            with self._cond:
                while self._running and not fut.done():
                    left = None if deadline is None else deadline - time.monotonic()
                    if left is not None and left <= 0:
                        if self._give_up(entry):
                            break
                        left = None  # it is in the batch being run: its result is on its way
                    self._cond.wait(left)
                if fut.done():
                    break
                # no batch running and ours still queued: our turn to run one (FIFO: ours is at
                # most ceil(position / max_batch) batches away, never more)
                self._running = True
                batch = [self._queue.popleft() for _ in range(min(self.max_batch, len(self._queue)))]
            try:
                self._process(batch)
            finally:
                with self._cond:
                    self._running = False
                    self._cond.notify_all()  # the finished callers return; one waiting caller runs next
        return fut.result(0)

    def _give_up(self, entry) -> bool:
        """Under the condition: a timed-out item still queued is dropped (True), so it is never
        processed after its caller has been told it failed."""
        try:
            self._queue.remove(entry)
        except ValueError:
            return False
        entry[1].set_exception(FutureTimeout("the item was not processed in time"))
        return True

    def _process(self, batch: list) -> None:
        try:
            results = self.process([item for item, _ in batch])
        except Exception as exc:  # noqa: BLE001 - the whole batch failed: each caller hears why
            results = [exc] * len(batch)
        for (_, fut), result in zip(batch, results):
            if isinstance(result, BaseException):
                fut.set_exception(result)
            else:
                fut.set_result(result)
