"""Signature recovery on every core, for the verifiers (`ayni verify`, `ayni-wallet reconcile`).

Recovering the signer of a secp256k1 signature is the one expensive step of a check (~30 us,
as much as the rest of the fold together) and it depends on nothing but the entry itself:
the digest and signature stored in its body. So the verifier reads ahead: each chunk of
entries has its (digest, signature) pairs sent to a process pool as soon as it is read, and
the fold, which must run in order in this process, meets each entry after its chunk came
back. Its signature check (`Recovery.check`, the same contract as ledger.core.fold's
check_signature) then only compares the recovered signer with the claimed one. The check
stays the fold's: an entry whose digest or signature is not the one recovered ahead (a
malformed body, a repeated seq) is recovered inline, so the findings are the ones a
sequential run makes, at the same seqs.

A pool costs a fork and a round trip per chunk: below `THRESHOLD` entries, or with one
core, recovery runs inline. Memory stays bounded: at most `ahead` chunks are in flight.
A worker that dies (OOM killer, a signal) breaks the pool: every chunk not yet recovered, and
all that follow, are then recovered inline, so the run finishes with the same findings instead
of waiting for ever on a lost task (a multiprocessing.Pool silently drops it).
Nothing here imports the service or its database (the wallet uses it too)."""
from __future__ import annotations

import multiprocessing
import os
import sys
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from itertools import islice
from typing import TypeVar

import coincurve

from ledger.core import errors as E
from ledger.core.addresses import to_checksum
from ledger.core.findings import Finding
from ledger.core.fold import check_signature, signature_finding
from ledger.core.hashing import keccak256
from ledger.core.typed_data import parse_signature

THRESHOLD = 20_000  # entries: below this a pool's start-up costs more than it saves
CHUNK = 2048  # entries per round trip to a worker (~60 ms of recovery)

T = TypeVar("T")
# (seq, digest, signature): what one entry asks of a worker
Job = tuple[int, bytes, str]


def default_jobs() -> int:
    return os.cpu_count() or 1


def recover_addresses(pairs: list[tuple[bytes, str]]) -> bytes:
    """For each (digest, signature): 1 + the signer's 20-byte address, or 21 zero bytes when the
    signature is malformed or recovers to nothing (one bytes object: cheap to send back)."""
    out = bytearray()
    from_sig = coincurve.PublicKey.from_signature_and_message
    for digest, signature in pairs:
        try:
            pub = from_sig(parse_signature(signature), digest, hasher=None)
        except E.LedgerError:
            out += bytes(21)
            continue
        except Exception:  # noqa: BLE001 - coincurve raises plain Exception on unrecoverable input
            out += bytes(21)
            continue
        out += b"\x01" + keccak256(pub.format(compressed=False)[1:])[-20:]
    return bytes(out)


def signature_job(seq: object, body: object) -> Job | None:
    """The (seq, digest, signature) an entry's body carries, or None (unsigned or malformed:
    the fold finds out which, and recovers inline if it must)."""
    if type(seq) is not int or not isinstance(body, dict):
        return None
    digest, signature = body.get("digest"), body.get("signature")
    if not (isinstance(digest, str) and isinstance(signature, str) and len(digest) == 66):
        return None
    try:
        return seq, bytes.fromhex(digest[2:]), signature
    except ValueError:
        return None


def chunked(items: Iterable[T], n: int) -> Iterator[list[T]]:
    it = iter(items)
    while chunk := list(islice(it, n)):
        yield chunk


def _until_failure(items: Iterable[T], failure: list[Exception]) -> Iterator[T]:
    """`items` until it raises; the exception is kept in `failure` for the consumer to raise
    once it has used everything before it (reading ahead must not move an error earlier)."""
    try:
        yield from items
    except Exception as exc:  # noqa: BLE001 - re-raised by the consumer, unchanged
        failure.append(exc)


class Recovery:
    """Signature recovery ahead of the fold. Use as a context manager; pass `check` as the
    fold's signature check and run the entries through `entries()` (or chunks through
    `chunks()`) so each is recovered before the fold meets it.

    `jobs`: processes recovering (1: inline, in this process); `expected`: how many entries
    the caller expects (None: unknown, counts as large) — the pool is used only from
    `threshold` entries on."""

    def __init__(self, jobs: int | None = None, *, expected: int | None = None, threshold: int = THRESHOLD,
                 chunk: int = CHUNK, ahead: int | None = None):
        self.jobs = max(1, jobs if jobs is not None else default_jobs())
        self.threshold = threshold
        self.expect(expected)
        self.chunk = chunk
        self.ahead = ahead if ahead is not None else 2 * self.jobs  # keeps every worker busy
        self._pool = None
        self._ready: dict[int, tuple[bytes, str, bytes]] = {}
        self._checksums: dict[bytes, str] = {}
        self.recovered = 0  # signatures recovered ahead (the rest, if any, inline)

    def __enter__(self) -> Recovery:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def expect(self, entries: int | None) -> None:
        """How many entries are coming (an export's header, the server's head), once known."""
        self.parallel = self.jobs > 1 and (entries is None or entries >= self.threshold)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def _start(self):
        if self._pool is None:
            self._pool = ProcessPoolExecutor(self.jobs, mp_context=multiprocessing.get_context("fork"))
        return self._pool

    def _broken(self, exc: BaseException) -> None:
        """The pool lost a worker: say so once, and recover the rest in this process."""
        if self.parallel:
            print(f"warning: a signature-recovery worker died ({exc}); "
                  "recovering the remaining signatures in this process", file=sys.stderr)
        self.parallel = False
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def _submit(self, jobs: list[Job]):
        """The pending recovery of `jobs`: a future, or None when the pool is gone (inline)."""
        if self._pool is None or not jobs:  # nothing to recover: no round trip
            return None
        try:
            return self._pool.submit(recover_addresses, [(d, s) for _, d, s in jobs])
        except (BrokenProcessPool, RuntimeError) as exc:  # RuntimeError: shut down after a break
            self._broken(exc)
            return None

    # -- reading ahead ------------------------------------------------------------------
    def chunks(self, chunks: Iterable[T], jobs_of: Callable[[T], list[Job]]) -> Iterator[T]:
        """Yield `chunks` in order, each once the signatures `jobs_of(chunk)` names are recovered."""
        if not self.parallel:
            yield from chunks
            return
        self._start()
        pending: deque = deque()
        failure: list[Exception] = []
        it = _until_failure(chunks, failure)
        more = True
        while more or pending:
            while more and len(pending) < self.ahead:
                chunk = next(it, None)
                if chunk is None:
                    more = False
                    break
                jobs = jobs_of(chunk)
                pending.append((chunk, jobs, self._submit(jobs)))
            if not pending:
                break
            chunk, jobs, result = pending.popleft()
            blob = None
            if result is not None:
                try:
                    blob = result.result()
                except BrokenProcessPool as exc:
                    self._broken(exc)
            if blob is None:  # no worker left: the same recovery, here
                blob = recover_addresses([(d, s) for _, d, s in jobs])
            self._ready = {job[0]: (job[1], job[2], blob[i * 21:i * 21 + 21]) for i, job in enumerate(jobs)}
            self.recovered += len(jobs)
            yield chunk
        self._ready = {}
        if failure:  # what the source raised, where a sequential read would have met it
            raise failure[0]

    def entries(self, entries: Iterable[T], job_of: Callable[[T], Job | None]) -> Iterator[T]:
        """Yield `entries` in order, each once its signature (`job_of(entry)`) is recovered."""
        if not self.parallel:
            yield from entries
            return

        def jobs_of(chunk):
            return [j for j in map(job_of, chunk) if j is not None]
        failure: list[Exception] = []
        for chunk in self.chunks(chunked(_until_failure(entries, failure), self.chunk), jobs_of):
            yield from chunk
        if failure:  # a torn line, a bad page: raised after every entry before it was folded
            raise failure[0]

    # -- the fold's check ------------------------------------------------------------------
    def check(self, seq: int, digest: bytes, signature: str, signer: str) -> Finding | None:
        """ledger.core.fold.check_signature, answered from the recovery made ahead when there is one."""
        got = self._ready.get(seq)
        if got is None or got[0] != digest or got[1] != signature:
            return check_signature(seq, digest, signature, signer)
        found = got[2]
        if found[0] == 1:
            address = found[1:]
            checksummed = self._checksums.get(address)
            if checksummed is None:
                if len(self._checksums) > 100_000:  # one per signer; bounded all the same
                    self._checksums.clear()
                checksummed = self._checksums[address] = to_checksum(address.hex())
            if checksummed == signer:
                return None
        return signature_finding(seq, signer)
