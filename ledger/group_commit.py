"""Group commit: many concurrent callers, one writer, one transaction per batch.

A hash-chained log has one head, so writers serialise on it whatever we do; the
cost that remains is per transaction (BEGIN, head lock, COMMIT and its WAL/fsync,
round trips while the lock is held). A single writer thread that takes whatever
has queued up, up to `max_batch` actions, and commits it in one transaction pays that
cost once per batch instead of once per transfer. Callers still get one result
each, only after their batch committed; each transfer stays atomic on its own
(ledger.service.Ledger.submit_many). Signature recovery runs in the callers'
threads, before queueing, so the writer only does database work.

A caller may queue a *bundle* of actions at once (POST /v1/transfers/batch): the
bundle travels as one queue item, so it is never split across transactions by
other callers' items, and it gets one result per action, in order."""
from __future__ import annotations

import queue
import threading
from concurrent.futures import Future

from .core import errors as E
from .service import Ledger, Posted, Submission, _Prepared


class GroupCommitter:
    def __init__(self, ledger: Ledger, *, max_batch: int = 512):
        self.ledger = ledger
        self.max_batch = max_batch
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="ayni-group-commit", daemon=True)
        self._thread.start()

    def _enqueue(self, prepared: list[_Prepared]) -> Future:
        if self._closed:
            raise E.LedgerError("the ledger writer is shut down", code="unavailable")
        fut: Future = Future()
        self._queue.put((prepared, fut))
        return fut

    def submit(self, submission: Submission, timeout: float | None = 30.0) -> Posted:
        """Post one signed action; raises LedgerError exactly as Ledger.submit would."""
        if self._closed:
            raise E.LedgerError("the ledger writer is shut down", code="unavailable")
        prepared = self.ledger.prepare(submission)  # raises on bad signature etc., nothing queued
        result = self._enqueue([prepared]).result(timeout)[0]
        if isinstance(result, E.LedgerError):
            raise result
        return result

    async def submit_async(self, submission: Submission) -> Posted:
        """The same for an asyncio caller: no thread parked per request while the batch commits."""
        import asyncio
        if self._closed:
            raise E.LedgerError("the ledger writer is shut down", code="unavailable")
        prepared = self.ledger.prepare(submission)
        result = (await asyncio.wrap_future(self._enqueue([prepared])))[0]
        if isinstance(result, E.LedgerError):
            raise result
        return result

    async def write_many_async(self, prepared: list[_Prepared]) -> list[Posted | E.LedgerError]:
        """Already prepared actions (Ledger.prepare), written together: one result each, in order
        (a refusal in its place; the others proceed)."""
        import asyncio
        if not prepared:
            return []
        return await asyncio.wrap_future(self._enqueue(list(prepared)))

    def _write(self, items: list) -> list[list]:
        """One transaction for every queued bundle; their results, bundle by bundle."""
        flat = [(k, p) for k, p in enumerate(p for bundle, _ in items for p in bundle)]
        outcomes = dict(self.ledger.write_prepared(flat))
        out, k = [], 0
        for bundle, _ in items:
            out.append([outcomes[k + j] for j in range(len(bundle))])
            k += len(bundle)
        return out

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            batch, size = [item], len(item[0])
            while size < self.max_batch:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._queue.put(None)  # finish this batch, then stop
                    break
                batch.append(nxt)
                size += len(nxt[0])
            try:
                for (_, fut), results in zip(batch, self._write(batch)):
                    fut.set_result(results)
            except Exception as exc:  # noqa: BLE001 - the whole batch was rolled back
                if size == 1 or isinstance(exc, E.StoreConnectionLost):
                    # a lost database fails every item alike: retrying each alone would make the
                    # last caller wait len(batch) times Ledger.WRITE_RETRY_S for the same answer
                    for _, fut in batch:
                        fut.set_exception(exc)
                    continue
                # one poisoned item must not sink its neighbours: each alone, in its own transaction
                lost: E.StoreConnectionLost | None = None  # the database went away mid-fallback
                for bundle, fut in batch:
                    if lost is not None:  # every later write would wait WRITE_RETRY_S for the same 503
                        if len(bundle) == 1:
                            fut.set_exception(lost)
                        else:
                            fut.set_result([lost] * len(bundle))
                        continue
                    if len(bundle) == 1:  # a single caller gets its exception exactly as before
                        try:
                            fut.set_result(self._write([(bundle, None)])[0])
                        except Exception as single:  # noqa: BLE001 - reported to that caller only
                            if isinstance(single, E.StoreConnectionLost):
                                lost = single
                            fut.set_exception(single)
                        continue
                    results = []
                    for p in bundle:
                        if lost is not None:
                            results.append(lost)
                            continue
                        try:
                            results.append(self._write([([p], None)])[0][0])
                        except E.LedgerError as single:  # reported in that action's place only
                            if isinstance(single, E.StoreConnectionLost):
                                lost = single
                            results.append(single)
                        except Exception as single:  # noqa: BLE001 - not a ledger answer: a fault
                            results.append(E.LedgerError(f"the ledger could not write this action: "
                                                         f"{type(single).__name__}", code="unavailable"))
                    fut.set_result(results)

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
