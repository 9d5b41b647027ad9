"""Moving a node's protocol messages between two `ayni serve` processes (docs/federation.md).

The protocol itself lives in FederationNode (ledger/federation/node.py): it appends every entry
durably before it returns a message, so this module can lose, repeat or delay any message and
nothing but time is lost. Two pieces:

- `Transport`: POST one wire message to the peer's /v1/federation/messages, feed its reply to
  `node.handle`, and send what that returns, until a reply needs no answer. Short timeouts: a
  peer that is down costs a round, never a hung thread (the deadline and the re-sends of the
  protocol take care of the rest).
- `Driver`: the background loop of `ayni serve` that sends `node.due()` every retry interval
  (and at once on start: that is the recovery after a crash). One per database: a second
  server on the same database waits on `driver_lock` instead of sending everything twice
  (harmless, the protocol is idempotent, but wasteful).
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path

from ..core.codec import parse_b32
from .batching import Batcher

log = logging.getLogger("ayni.federation")

MESSAGES_PATH = "/v1/federation/messages"
PROPOSALS_PATH = "/v1/federation/alliances/proposals"
ACCEPTANCES_PATH = "/v1/federation/alliances/acceptances"
CONNECT_TIMEOUT_S = 1.0
READ_TIMEOUT_S = 5.0
MAX_HOPS = 6  # prepare -> vote -> commit -> ack is three; a loop means a bug, not a reason to spin
MAX_BATCH = 64  # node messages per request: the receiver's limit (ledger.federation.node.MAX_BATCH)
MAX_BATCH_BYTES = 48 * 1024  # under the API's 64 KiB body limit (a PREPARE with a long memo is ~4 KiB)
SENDERS_PER_PEER = 2  # requests in flight to one peer: one is built while the other is answered
BATCH_NOT_UNDERSTOOD = (400, 413, 422)  # the peer refused the batch as a whole: send one by one


class TransportError(Exception):
    """The peer could not be reached, or refused the message (its error code is kept)."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None):
        super().__init__(message)
        self.status, self.code = status, code


Send = Callable[[str, str, dict], "dict | None"]  # (peer base URL, path, JSON body) -> reply or None


def http_sender(client=None, *, connect_timeout: float = CONNECT_TIMEOUT_S,
                read_timeout: float = READ_TIMEOUT_S) -> Send:
    """A `Send` over real HTTP (httpx). 2xx with a body: the reply; 204: no reply; anything
    else: TransportError with the peer's error code (e.g. wrong_node_signature)."""
    import httpx
    client = client or httpx.Client(timeout=httpx.Timeout(read_timeout, connect=connect_timeout),
                                    limits=httpx.Limits(max_connections=32, max_keepalive_connections=16))

    def send(base_url: str, path: str, body: dict) -> dict | None:
        try:
            r = client.post(base_url.rstrip("/") + path, json=body)
        except httpx.HTTPError as exc:
            raise TransportError(f"{base_url}: {type(exc).__name__}: {exc}") from None
        if r.status_code == 204 or (r.status_code == 200 and not r.content):
            return None
        try:
            data = r.json()
        except ValueError:
            raise TransportError(f"{base_url}: HTTP {r.status_code}, not JSON", status=r.status_code) from None
        if not 200 <= r.status_code < 300:  # a peer's 201 (a stored proposal) is a success too
            err = data.get("error", {}) if isinstance(data, dict) else {}
            raise TransportError(f"{base_url}: HTTP {r.status_code} {err.get('code')}: {err.get('message')}",
                                 status=r.status_code, code=err.get("code"))
        return data

    send.client = client  # type: ignore[attr-defined]
    return send


def wire_payment_id(wire: object) -> str | None:
    """The paymentId a wire message is about (None for alliance messages), wherever the node
    put the signed NodeMessage: at the top or under "message"."""
    if not isinstance(wire, dict):
        return None
    for part in (wire.get("message"), wire):
        if isinstance(part, dict) and isinstance(part.get("paymentId"), str):
            pid = part["paymentId"]
            return None if int(pid, 16) == 0 else pid.lower()
    return None


def wire_kind(wire: object) -> str | None:
    part = wire.get("message") if isinstance(wire, dict) else None
    return part.get("kind") if isinstance(part, dict) else None


class Transport:
    """Delivers wire messages of one node to its peers and plays each exchange to its end.

    Two ways: `deliver` sends one message per request and waits for the whole exchange (the
    driver's re-sends: few, and each keeps its own HTTP status); `post` queues a message in the
    peer's outbox, where concurrent payers' messages leave together in one request
    {"messages": [...]}, the peer handles them in one transaction, and the replies are handled
    here in one transaction too (the payers' hot path: see "Throughput" in docs/federation.md)."""

    def __init__(self, node, send: Send | None = None, *, background_workers: int = 4,
                 senders_per_peer: int = SENDERS_PER_PEER):
        self.node = node
        self.send = send or http_sender()
        self.senders_per_peer = senders_per_peer
        self._background = ThreadPoolExecutor(max_workers=background_workers,
                                              thread_name_prefix="ayni-federation-decision")
        self._outboxes: dict[str, Batcher] = {}
        self._outboxes_lock = threading.Lock()

    def deliver(self, peer_url: str, wire: dict, *, decision_in_background: bool = False) -> None:
        """Send `wire`, hand the reply to the node, send its answer, ... Raises TransportError
        when the peer is unreachable or refuses; the node's state is durable either way.

        `decision_in_background`: once the node answers with its decision (COMMIT/ABORT), the
        payment is decided here, durably: the payer need not wait for the destination to apply
        it, so the decision is delivered by a background thread (and, if that fails, asked for
        by the destination's re-sent vote)."""
        for _ in range(MAX_HOPS):
            reply = self.send(peer_url, MESSAGES_PATH, wire)
            if reply is None:
                return
            wire = self.node.handle(reply)
            if wire is None:
                return
            if decision_in_background and wire_kind(wire) in ("commit", "abort"):
                self._background.submit(self.deliver_quietly, peer_url, wire)
                return
        log.warning("federation: exchange with %s did not settle in %d hops", peer_url, MAX_HOPS)

    def deliver_quietly(self, peer_url: str, wire: dict, **kw) -> bool:
        try:
            self.deliver(peer_url, wire, **kw)
            return True
        except TransportError as exc:
            log.info("federation: %s", exc)
        except Exception as exc:  # noqa: BLE001 - a peer's bad reply refused by our node (a LedgerError): logged, retried later
            log.warning("federation: reply from %s refused: %s", peer_url, exc)
        return False

    # -- batched: the outbox of each peer ---------------------------------------------------------
    def post(self, peer_url: str, wire: dict, *, hops: int = 0) -> Future:
        """Queue `wire` for the peer. The future is done once the peer's reply was handled here
        (durably: e.g. the decision on a vote), with our answer to it (a COMMIT, say, which
        follows in the background, batched the same way) or None; it raises TransportError if
        the peer could not be reached or refused this message, or the node's LedgerError if it
        refused the reply."""
        return self._outbox(peer_url).put((wire, hops))

    def _outbox(self, peer_url: str) -> Batcher:
        box = self._outboxes.get(peer_url)
        if box is None:
            with self._outboxes_lock:
                box = self._outboxes.get(peer_url)
                if box is None:
                    box = self._outboxes[peer_url] = Batcher(
                        lambda items: self._exchange(peer_url, items), max_batch=MAX_BATCH,
                        workers=self.senders_per_peer, name="ayni-federation-outbox",
                        weight=lambda item: _wire_size(item[0]), max_weight=MAX_BATCH_BYTES)
        return box

    def _exchange(self, peer_url: str, items: list) -> list:
        """One request to the peer for every queued message, one transaction here for all the
        replies; the answers they call for go back to the outbox."""
        replies = self._send_batch(peer_url, [wire for wire, _ in items])
        results: list = [r if isinstance(r, Exception) else None for r in replies]
        todo = [(k, r) for k, r in enumerate(replies) if isinstance(r, dict)]
        if not todo:
            return results
        answers = self.node.handle_many([r for _, r in todo])
        for (k, _), answer in zip(todo, answers):
            if isinstance(answer, Exception):
                results[k] = answer
            elif answer is not None:
                results[k] = answer
                hops = items[k][1] + 1
                if hops >= MAX_HOPS:
                    log.warning("federation: exchange with %s did not settle in %d hops", peer_url, MAX_HOPS)
                    continue
                self.post(peer_url, answer, hops=hops).add_done_callback(_log_failure(peer_url))
        return results

    def _send_batch(self, peer_url: str, wires: list) -> list:
        """The peer's reply to each message (dict or None) or the TransportError that refused it."""
        if len(wires) == 1:  # alone: the plain form, with its HTTP status
            try:
                return [self.send(peer_url, MESSAGES_PATH, wires[0])]
            except TransportError as exc:
                return [exc]
        try:
            data = self.send(peer_url, MESSAGES_PATH, {"messages": wires})
        except TransportError as exc:
            if exc.status in BATCH_NOT_UNDERSTOOD:  # a peer that reads one message per request
                return [item for wire in wires for item in self._send_batch(peer_url, [wire])]
            return [exc] * len(wires)
        results = data.get("results") if isinstance(data, dict) else None
        if not isinstance(results, list) or len(results) != len(wires):
            return [TransportError(f"{peer_url}: a batch reply without one result per message")] * len(wires)
        return [_batch_result(peer_url, r) for r in results]

    def send_due(self, pool: ThreadPoolExecutor | None = None, *, payment_id: str | None = None) -> int:
        """Send every message the node says is due now (only those of `payment_id` if given).
        Returns how many were sent without a transport error."""
        if payment_id is None:
            due = self.node.due()
        else:  # that payment's only: the others' re-sends stay due for the driver
            due = self.node.due(payment_id=parse_b32(payment_id, "paymentId"))
        if pool is None or len(due) < 2:
            return sum(self.deliver_quietly(url, w) for url, w in due)
        return sum(pool.map(lambda item: self.deliver_quietly(*item), due))


def _wire_size(wire: dict) -> int:
    """A bound on a wire message's JSON size, without encoding it: a PREPARE carries the
    transfer, two signatures and a memo of up to 500 characters (6 bytes each when escaped)."""
    memo = wire.get("memo")
    return 2048 + 6 * len(memo) if isinstance(memo, str) else (2048 if "transfer" in wire else 512)


def _batch_result(peer_url: str, r: object):
    if r is None or (isinstance(r, dict) and "error" not in r):
        return r
    err = r.get("error") if isinstance(r, dict) else None
    if not isinstance(err, dict):
        return TransportError(f"{peer_url}: a batch result that is neither a reply nor an error")
    return TransportError(f"{peer_url}: {err.get('code')}: {err.get('message')}", code=err.get("code"))


def _log_failure(peer_url: str):
    def done(fut: Future) -> None:
        exc = fut.exception()
        if isinstance(exc, TransportError):
            log.info("federation: %s", exc)
        elif exc is not None:  # our node refused the peer's reply: logged, the driver re-sends later
            log.warning("federation: reply from %s refused: %s", peer_url, exc)
    return done


def send_payment_now(transport: Transport, submitted: dict, *, wait_s: float = 2.0,
                     poll_s: float = 0.02) -> dict:
    """For the payer's request: push this payment's PREPARE at once (the `outbox` node.submit
    returned, through the peer's batched outbox; else whatever the node says is due for it),
    then wait up to `wait_s` for a decision (the driver may finish it if this first exchange
    failed). Returns the leg."""
    deadline = time.monotonic() + wait_s
    payment_id = submitted["paymentId"]
    outbox = submitted.get("outbox") or []
    futures = [transport.post(peer_url, wire) for peer_url, wire in outbox]
    answers = []
    for fut, (peer_url, _) in zip(futures, outbox):
        try:
            answers.append(fut.result(max(0.0, deadline - time.monotonic())))
        except TransportError as exc:
            log.info("federation: %s", exc)
        except FutureTimeout:
            break
        except Exception as exc:  # noqa: BLE001 - a peer's bad reply refused by our node: logged, retried later
            log.warning("federation: reply from %s refused: %s", peer_url, exc)
    if outbox and len(answers) == len(outbox) and all(
            wire_kind(a) == "commit" and wire_payment_id(a) == payment_id.lower() for a in answers):
        # our node answered the peer's vote on THIS payment with COMMIT: it signs one only for a
        # leg whose commit entry is durable, so the state is known without reading it back
        return {k: v for k, v in submitted.items() if k != "outbox"} | {"state": "committed", "code": ""}
    if not outbox:
        transport.send_due(payment_id=payment_id)
    leg = transport.node.payment(payment_id)
    while leg.get("state") == "prepared" and time.monotonic() < deadline:
        time.sleep(poll_s)
        leg = transport.node.payment(payment_id)
    return leg


# --- one driver per database -------------------------------------------------------------------

class driver_lock:
    """Held while this process drives. PostgreSQL: a session advisory lock on a connection kept
    open (released by the server if this process dies). SQLite: an flock on a file beside the
    database (released by the kernel if this process dies). Other URLs: always held."""

    KEY = 0x41594E49_46454400 >> 1  # "AYNIFED" as a signed 64-bit key

    def __init__(self, engine):
        self.engine, self._conn, self._file = engine, None, None

    def try_acquire(self) -> bool:
        if self._conn is not None and not self._still_held():
            # the server that granted the lock died or was failed over: the lock went with it, and
            # on the new primary another process may take it. Drop the ghost and ask again.
            self._drop()
        if self._conn is not None or self._file is not None:
            return True
        dialect = self.engine.dialect.name
        if dialect == "postgresql":
            from sqlalchemy import text
            conn = self.engine.connect()
            if conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": self.KEY}).scalar():
                conn.commit()
                self._conn = conn
                return True
            conn.close()
            return False
        if dialect == "sqlite" and self.engine.url.database not in (None, "", ":memory:"):
            import fcntl
            f = open(Path(self.engine.url.database).with_suffix(".federation.lock"), "a+")
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                f.close()
                return False
            self._file = f
            return True
        self._file = True
        return True

    def _still_held(self) -> bool:
        """Our advisory lock is still held by this very session (one cheap query per round)."""
        from sqlalchemy import text
        try:
            held = self._conn.execute(text(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
                "AND pid = pg_backend_pid() AND ((classid::bigint << 32) | objid::bigint) = :k"),
                {"k": self.KEY & 0xFFFFFFFFFFFFFFFF}).scalar()
            self._conn.commit()
            return bool(held)
        except Exception:  # noqa: BLE001 - a dead connection: the lock is gone with its server
            return False

    def _drop(self) -> None:
        try:
            self._conn.invalidate()  # never back into the pool: it may still be a live session
        except Exception:  # noqa: BLE001
            pass
        self._conn = None

    def release(self) -> None:
        if self._conn is not None:
            # a pooled connection outlives close(): unlock explicitly, or the lock stays held
            from sqlalchemy import text
            try:
                self._conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self.KEY})
                self._conn.commit()
            finally:
                self._conn.close()
        if self._file not in (None, True):
            self._file.close()
        self._conn = self._file = None


class Driver:
    """The background loop: at start and every `retry_s`, send what the node says is due."""

    def __init__(self, node, transport: Transport | None = None, *, retry_s: float = 2.0,
                 workers: int = 8, lock: driver_lock | None = None):
        self.node = node
        self.transport = transport or Transport(node)
        self.retry_s = retry_s
        self.lock = lock
        self.stop = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ayni-federation-send")
        self._thread: threading.Thread | None = None

    def round(self) -> int:
        if self.lock is not None and not self.lock.try_acquire():
            return 0  # another server drives this database
        return self.transport.send_due(self._pool)

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self.round()
            except Exception:  # noqa: BLE001 - the database was unreachable, say: try again next round
                log.exception("federation: driver round failed")
            self.stop.wait(self.retry_s)
        self._pool.shutdown(wait=False)
        if self.lock is not None:
            self.lock.release()

    def start(self) -> Driver:
        self._thread = threading.Thread(target=self.run, name="ayni-federation-driver", daemon=True)
        self._thread.start()
        return self

    def close(self, timeout: float = 5.0) -> None:
        self.stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
