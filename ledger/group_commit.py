"""Group commit: many concurrent callers, one writer, one transaction per batch.

A hash-chained log has one head, so writers serialise on it whatever we do; the
cost that remains is per transaction (BEGIN, head lock, COMMIT and its WAL/fsync,
round trips while the lock is held). A single writer thread that takes whatever
has queued up, up to `max_batch`, and commits it in one transaction pays that
cost once per batch instead of once per transfer. Callers still get one result
each, only after their batch committed; each transfer stays atomic on its own
(ledger.service.Ledger.submit_many). Signature recovery runs in the callers'
threads, before queueing, so the writer only does database work."""
from __future__ import annotations

import queue
import threading
from concurrent.futures import Future

from .core import errors as E
from .service import Ledger, Posted, Submission


class GroupCommitter:
    def __init__(self, ledger: Ledger, *, max_batch: int = 256):
        self.ledger = ledger
        self.max_batch = max_batch
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="ayni-group-commit", daemon=True)
        self._thread.start()

    def submit(self, submission: Submission, timeout: float | None = 30.0) -> Posted:
        """Post one signed action; raises LedgerError exactly as Ledger.submit would."""
        if self._closed:
            raise E.LedgerError("the ledger writer is shut down", code="unavailable")
        prepared = self.ledger.prepare(submission)  # raises on bad signature etc., nothing queued
        fut: Future = Future()
        self._queue.put((prepared, fut))
        result = fut.result(timeout)
        if isinstance(result, E.LedgerError):
            raise result
        return result

    async def submit_async(self, submission: Submission) -> Posted:
        """The same for an asyncio caller: no thread parked per request while the batch commits."""
        import asyncio
        if self._closed:
            raise E.LedgerError("the ledger writer is shut down", code="unavailable")
        prepared = self.ledger.prepare(submission)
        fut: Future = Future()
        self._queue.put((prepared, fut))
        result = await asyncio.wrap_future(fut)
        if isinstance(result, E.LedgerError):
            raise result
        return result

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            batch = [item]
            while len(batch) < self.max_batch:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._queue.put(None)  # finish this batch, then stop
                    break
                batch.append(nxt)
            try:
                outcomes = dict(self.ledger.write_prepared([(i, p) for i, (p, _) in enumerate(batch)]))
                for i, (_, fut) in enumerate(batch):
                    fut.set_result(outcomes[i])
            except Exception as exc:  # noqa: BLE001 - the whole batch was rolled back
                if len(batch) == 1 or isinstance(exc, E.StoreConnectionLost):
                    # a lost database fails every item alike: retrying each alone would make the
                    # last caller wait len(batch) times Ledger.WRITE_RETRY_S for the same answer
                    for _, fut in batch:
                        fut.set_exception(exc)
                    continue
                # one poisoned item must not sink its neighbours: each alone, in its own transaction
                for p, fut in batch:
                    try:
                        fut.set_result(dict(self.ledger.write_prepared([(0, p)]))[0])
                    except Exception as single:  # noqa: BLE001 - reported to that caller only
                        fut.set_exception(single)

    def close(self) -> None:
        self._closed = True
        self._queue.put(None)
        self._thread.join(timeout=30)
        while True:  # anything queued after the sentinel: tell its caller, never hang it
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if item is not None:
                item[1].set_exception(E.LedgerError("the ledger writer is shut down", code="unavailable"))
