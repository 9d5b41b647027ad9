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
from concurrent.futures import Future, InvalidStateError
from concurrent.futures import TimeoutError as FutureTimeout

from .core import errors as E
from .service import Ledger, Posted, Submission, _Prepared


# How long a caller waits for its batch's COMMIT before it is answered "outcome unknown" (HTTP
# 503, Retry-After). A COMMIT can wait without end: PostgreSQL holds it until a synchronous
# standby has the WAL (a dead standby, or a promoted node still naming one). The commit is not
# cancelled (cancelling it would make it visible unreplicated); the member retries the same signed
# request, which answers the original seq once the commit went through, and never posts twice.
SUBMIT_WAIT_S = 30.0
OUTCOME_UNKNOWN = ("the database has not confirmed this write within {s:g} s (a commit may be waiting "
                   "for a synchronous standby, or a failover is under way); the outcome is unknown: "
                   "retry the same signed request, a retry never posts twice")


def outcome_unknown(wait_s: float) -> E.StoreConnectionLost:
    return E.StoreConnectionLost(OUTCOME_UNKNOWN.format(s=wait_s))


def _settle(fut: Future, *, result=None, exc: BaseException | None = None) -> None:
    """Answer a caller; one that gave up (a cancelled asyncio wait) must not stop the writer."""
    try:
        fut.set_exception(exc) if exc is not None else fut.set_result(result)
    except InvalidStateError:
        pass


class GroupCommitter:
    def __init__(self, ledger: Ledger, *, max_batch: int = 512, wait_s: float = SUBMIT_WAIT_S):
        self.ledger = ledger
        self.max_batch = max_batch
        self.wait_s = wait_s
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

    def submit(self, submission: Submission, timeout: float | None = None) -> Posted:
        """Post one signed action; raises LedgerError exactly as Ledger.submit would, or
        StoreConnectionLost "outcome unknown" after `timeout` (default self.wait_s) seconds."""
        if self._closed:
            raise E.LedgerError("the ledger writer is shut down", code="unavailable")
        prepared = self.ledger.prepare(submission)  # raises on bad signature etc., nothing queued
        wait = self.wait_s if timeout is None else timeout
        try:
            result = self._enqueue([prepared]).result(wait)[0]
        except FutureTimeout:  # never the generic 500 "nothing was acknowledged": it may commit yet
            raise outcome_unknown(wait) from None
        if isinstance(result, E.LedgerError):
            raise result
        return result

    async def submit_async(self, submission: Submission) -> Posted:
        """The same for an asyncio caller: no thread parked per request while the batch commits."""
        if self._closed:
            raise E.LedgerError("the ledger writer is shut down", code="unavailable")
        prepared = self.ledger.prepare(submission)
        result = (await self._wait(self._enqueue([prepared])))[0]
        if isinstance(result, E.LedgerError):
            raise result
        return result

    async def write_many_async(self, prepared: list[_Prepared]) -> list[Posted | E.LedgerError]:
        """Already prepared actions (Ledger.prepare), written together: one result each, in order
        (a refusal in its place; the others proceed)."""
        if not prepared:
            return []
        return await self._wait(self._enqueue(list(prepared)))

    async def _wait(self, fut: Future):
        import asyncio
        try:  # shield: the batch is not cancelled, only this caller stops waiting for it
            return await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(fut)), self.wait_s)
        except TimeoutError:  # asyncio's is the builtin since 3.11
            raise outcome_unknown(self.wait_s) from None

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
                    _settle(fut, result=results)
            except Exception as exc:  # noqa: BLE001 - the whole batch was rolled back
                if size == 1 or isinstance(exc, E.StoreConnectionLost):
                    # a lost database fails every item alike: retrying each alone would make the
                    # last caller wait len(batch) times Ledger.WRITE_RETRY_S for the same answer
                    for _, fut in batch:
                        _settle(fut, exc=exc)
                    continue
                # one poisoned item must not sink its neighbours: each alone, in its own transaction
                lost: E.StoreConnectionLost | None = None  # the database went away mid-fallback
                for bundle, fut in batch:
                    if lost is not None:  # every later write would wait WRITE_RETRY_S for the same 503
                        if len(bundle) == 1:
                            _settle(fut, exc=lost)
                        else:
                            _settle(fut, result=[lost] * len(bundle))
                        continue
                    if len(bundle) == 1:  # a single caller gets its exception exactly as before
                        try:
                            _settle(fut, result=self._write([(bundle, None)])[0])
                        except Exception as single:  # noqa: BLE001 - reported to that caller only
                            if isinstance(single, E.StoreConnectionLost):
                                lost = single
                            _settle(fut, exc=single)
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
                    _settle(fut, result=results)

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
