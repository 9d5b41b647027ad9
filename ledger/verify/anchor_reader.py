"""Reading an Ayni Anchor contract (contracts/Anchor.sol) over JSON-RPC: its Anchored events,
its head, and whether a batch is really part of its history. Read-only, no key, no database.

    reader = AnchorReader.connect("https://node.example", contract_address=pinned, expected_chain_id=100)
    reader.is_anchored_on_chain(root, first_seq, last_seq)

This is the verifier's reader (`ayni-wallet verify` and `reconcile`): it imports ledger.core
and web3 only, and carries the few ABI entries it reads (checked against the compiled
artifact by tests/test_chain.py), so it depends on neither the server's code nor its build.
The server's writer (ledger/chain/web3_anchor.py) extends it with deploying and sending.
Every expected fault becomes ChainError, ChainUnavailable or WrongContract.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

import requests
from eth_abi import decode as abi_decode
from eth_utils import to_checksum_address
from web3 import Web3
from web3.exceptions import (
    BadFunctionCallOutput,
    ContractLogicError,
    ProviderConnectionError,
    TimeExhausted,
    TooManyRequests,
    Web3Exception,
    Web3RPCError,
)

from ledger.core.accumulator import accumulate, genesis
from ledger.core.codec import hex0x
from ledger.core.hashing import keccak256

from .chain_types import (
    UINT64_MAX,
    AnchoredEvent,
    ChainError,
    ChainUnavailable,
    Retirement,
    WrongContract,
    implausible,
)

ANCHORED_TOPIC = keccak256(b"Anchored(bytes32,uint64,uint64,bytes24)")
CHECKPOINTED_TOPIC = keccak256(b"Checkpointed(bytes24,uint64)")


def _fn(name: str, inputs: list[tuple[str, str]], outputs: list[str]) -> dict:
    return {"type": "function", "name": name, "stateMutability": "view",
            "inputs": [{"name": n, "type": t} for n, t in inputs],
            "outputs": [{"name": "", "type": t} for t in outputs]}


_BATCH = {"name": "later", "type": "tuple[]", "components": [
    {"name": "root", "type": "bytes32"}, {"name": "firstSeq", "type": "uint64"}, {"name": "lastSeq", "type": "uint64"}]}
# The view functions this reader calls, as the Anchor contract declares them.
READER_ABI: list[dict] = [
    _fn("GENESIS", [], ["bytes24"]),
    _fn("head", [], ["bytes24", "uint64"]),
    _fn("lastAnchoredSeq", [], ["uint64"]),
    _fn("ANCHORER", [], ["address"]),
    _fn("hasRole", [("role", "bytes32"), ("account", "address")], ["bool"]),
    _fn("isKnownState", [("acc", "bytes24"), ("last", "uint64")], ["bool"]),
    _fn("isAnchored", [("root", "bytes32"), ("firstSeq", "uint64"), ("lastSeq", "uint64"),
                       ("prevAcc", "bytes24")], ["bool"]),
    {"type": "event", "name": "Anchored", "anonymous": False, "inputs": [
        {"name": "root", "type": "bytes32", "indexed": True}, {"name": "firstSeq", "type": "uint64", "indexed": True},
        {"name": "lastSeq", "type": "uint64", "indexed": False},
        {"name": "accumulator", "type": "bytes24", "indexed": False}]},
]
READER_ABI[6]["inputs"].append(_BATCH)

CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    requests.exceptions.RequestException,  # refused, timeout, HTTP 4xx/5xx from a proxy
    ProviderConnectionError,
    TooManyRequests,  # rate-limited by a provider: transient, like a timeout
    TimeExhausted,
    ConnectionError,  # builtin: refused / reset
    TimeoutError,
)


def short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]


def norm_hash(tx_hash: str | bytes) -> str:
    """A transaction hash as 0x + 64 lowercase hex digits (ValueError if it is not one)."""
    if isinstance(tx_hash, (bytes, bytearray)):
        raw = bytes(tx_hash)
    else:
        s = tx_hash[2:] if tx_hash.startswith(("0x", "0X")) else tx_hash
        try:
            raw = bytes.fromhex(s)
        except ValueError:
            raise ValueError(f"not a transaction hash: {tx_hash!r}") from None
    if len(raw) != 32:
        raise ValueError(f"not a transaction hash: {tx_hash!r}")
    return hex0x(raw)


class AnchorReader:
    """One Anchor contract on one chain, read-only. See the module docstring."""

    log_chunk_blocks = 5_000  # blocks per eth_getLogs; halved automatically if the node refuses
    # exception types a node call may raise for a revert, and for any other node fault
    # (the writer adds eth-tester's for its embedded chain)
    revert_errors: tuple[type[BaseException], ...] = (ContractLogicError,)
    node_errors: tuple[type[BaseException], ...] = (Web3RPCError, Web3Exception)

    def __init__(self, w3: Web3, *, abi: list[dict] | None = None, label: str = "json-rpc"):
        self.w3 = w3
        self._abi = abi or READER_ABI
        self._label = label
        self._contract = None
        self.contract_address: str | None = None
        self.start_block = 0  # lowest block that can hold Anchored logs
        with self._rpc("eth_chainId"):
            self.chain_id: int = int(w3.eth.chain_id)

    @classmethod
    def connect(cls, url: str, *, contract_address: str | None = None, timeout: float = 10.0,
                expected_chain_id: int | None = None, **kwargs):
        """JSON-RPC over HTTP(S). ChainUnavailable if the node does not answer; WrongContract if
        contract_address is not an Anchor there or the chain id differs from expected_chain_id."""
        from web3 import HTTPProvider

        if not url.startswith(("http://", "https://")):
            raise ChainError(f"unsupported chain URL {url!r}: only http:// and https:// JSON-RPC")
        provider = HTTPProvider(url, request_kwargs={"timeout": timeout},
                                exception_retry_configuration=None)  # fail fast; callers decide on retries
        chain = cls(Web3(provider), label=url, **kwargs)
        if expected_chain_id is not None and chain.chain_id != expected_chain_id:
            raise WrongContract(f"{url} is chain id {chain.chain_id}, expected {expected_chain_id}")
        if contract_address is not None:
            chain.use_contract(contract_address)
        return chain

    # ------------------------------------------------------------------ error mapping

    @contextlib.contextmanager
    def _rpc(self, what: str, *, revert_as: type[ChainError] | None = None) -> Iterator[None]:
        try:
            yield
        except ChainError:
            raise
        except self.revert_errors as exc:
            raise self._reverted(exc, what, revert_as) from None
        except CONNECTION_ERRORS as exc:
            raise ChainUnavailable(f"{what}: chain node {self._label} unavailable ({short(exc)})") from None
        except self.node_errors as exc:
            text = str(exc).lower()
            if "execution reverted" in text or "transaction reverted" in text:
                raise self._reverted(exc, what, revert_as) from None
            raise self._node_fault(exc, what, text) from None
        except OSError as exc:  # socket-level failures not wrapped by requests
            raise ChainUnavailable(f"{what}: chain node {self._label} unavailable ({short(exc)})") from None

    def _reverted(self, exc: BaseException, what: str, cls: type[ChainError] | None) -> ChainError:
        return (cls or ChainError)(f"{what}: reverted: {short(exc)}")

    def _node_fault(self, exc: BaseException, what: str, text: str) -> ChainError:
        return ChainError(f"{what}: {short(exc)}")

    # ------------------------------------------------------------------ contract

    def _need_contract(self):
        if self._contract is None:
            raise ChainError("no Anchor contract selected: call deploy() or use_contract() first")
        return self._contract

    def use_contract(self, address: str) -> None:
        """Select the Anchor at `address`; WrongContract unless it has code whose GENESIS is the
        one an Ayni Anchor deployed at this address on this chain id must have."""
        try:
            checksummed = to_checksum_address(address)
        except (ValueError, TypeError):
            raise WrongContract(f"not an address: {address!r}") from None
        with self._rpc("eth_getCode"):
            code = self.w3.eth.get_code(checksummed)
        if not code:
            raise WrongContract(f"no contract code at {checksummed} on chain {self.chain_id}")
        contract = self.w3.eth.contract(address=checksummed, abi=self._abi)
        try:
            with self._rpc("GENESIS()", revert_as=ChainError):
                got = bytes(contract.functions.GENESIS().call())
        except ChainUnavailable:
            raise
        except ChainError as exc:  # reverted / returned nothing: no such function here
            raise WrongContract(f"{checksummed} is not an Anchor contract ({exc.message})") from None
        if got != genesis(self.chain_id, checksummed):
            raise WrongContract(
                f"{checksummed} is not an Ayni Anchor for chain id {self.chain_id} at this address (GENESIS mismatch)"
            )
        self._contract = contract
        self.contract_address = checksummed

    def _call(self, fn: str, *args, block: int | str = "latest"):
        contract = self._need_contract()
        with self._rpc(f"{fn}()", revert_as=ChainError):
            try:
                return getattr(contract.functions, fn)(*args).call(block_identifier=block)
            except BadFunctionCallOutput as exc:
                raise WrongContract(f"{fn}() returned no data at {contract.address}: {short(exc)}") from None

    # ------------------------------------------------------------------ state

    def block_number(self) -> int:
        with self._rpc("eth_blockNumber"):
            return int(self.w3.eth.block_number)

    def block_time_ms(self, block: int) -> int:
        with self._rpc("eth_getBlockByNumber", revert_as=ChainError):
            return int(self.w3.eth.get_block(block)["timestamp"]) * 1000

    def last_anchored_seq(self) -> int:
        return int(self._call("lastAnchoredSeq"))

    def head(self, *, block: int | str = "latest") -> tuple[bytes, int]:
        acc, last = self._call("head", block=block)
        return bytes(acc), int(last)

    # ------------------------------------------------------------------ events

    def _resolve_block(self, tag: int | str) -> int:
        if isinstance(tag, int):
            return tag
        with self._rpc(f"block {tag}"):
            return int(self.w3.eth.get_block(tag)["number"])

    def _logs(self, topics: list, from_block: int, to_block: int) -> list[dict]:
        contract = self._need_contract()
        out: list[dict] = []
        start = max(from_block, self.start_block)
        chunk = self.log_chunk_blocks
        while start <= to_block:
            end = min(to_block, start + chunk - 1)
            try:
                with self._rpc("eth_getLogs"):
                    logs = self.w3.eth.get_logs(
                        {"address": contract.address, "topics": topics, "fromBlock": start, "toBlock": end}
                    )
            except ChainUnavailable:
                raise
            except ChainError:
                if chunk == 1:
                    raise
                chunk = max(1, chunk // 2)  # providers cap the range or the result size
                continue
            out.extend(logs)
            start = end + 1
        out.sort(key=lambda lg: (int(lg["blockNumber"]), int(lg["logIndex"])))
        return out

    @staticmethod
    def _event(log: dict) -> AnchoredEvent:
        topics = [bytes(t) for t in log["topics"]]
        last_seq, acc = abi_decode(["uint64", "bytes24"], bytes(log["data"]))
        return AnchoredEvent(
            root=topics[1],
            first_seq=int.from_bytes(topics[2], "big"),
            last_seq=int(last_seq),
            accumulator=bytes(acc),
            tx_hash=norm_hash(bytes(log["transactionHash"])),
            block=int(log["blockNumber"]),
            log_index=int(log["logIndex"]),
        )

    def anchored_events(self, *, from_block: int = 0, to_block: int | str = "latest") -> list[AnchoredEvent]:
        """All Anchored events of the contract in chain order (eth_getLogs in chunks)."""
        end = self._resolve_block(to_block)
        return [self._event(lg) for lg in self._logs([ANCHORED_TOPIC], from_block, end) if len(lg["topics"]) == 3]

    def find_batch(self, first_seq: int, *, from_block: int = 0) -> AnchoredEvent | None:
        """The Anchored event with this firstSeq (indexed topic), or None."""
        topic = int(first_seq).to_bytes(32, "big")
        end = self._resolve_block("latest")
        logs = [lg for lg in self._logs([ANCHORED_TOPIC, None, topic], from_block, end) if len(lg["topics"]) == 3]
        return self._event(logs[0]) if logs else None

    # ------------------------------------------------------------------ verification

    def is_anchored_on_chain(self, root: bytes, first_seq: int, last_seq: int) -> bool:
        """Replay the accumulator from GENESIS (computed from chain id and address, not read)
        over every Anchored event, recomputing each step in Python; true iff (root, first,
        last) is one of the batches AND the replay lands on the contract's head (read at the
        same block as the logs) or on a state the contract knows (a checkpoint, e.g. after
        retire()). When the proof is short, the contract's own isAnchored() must agree too.
        An implausible batch (ending at 2**64-1 or past IMPLAUSIBLE_SEQ, or larger than
        MAX_BATCH_SIZE: chain_types.implausible) is never a ledger batch but a hostile one (see
        `retirement()`): false for it; the batches before it replay through it to the head."""
        contract = self._need_contract()
        root = bytes(root)
        if implausible(first_seq, last_seq):
            return False
        snapshot = self.block_number()
        events = self.anchored_events(to_block=snapshot)
        acc, last = genesis(self.chain_id, contract.address), 0
        states: list[tuple[bytes, int]] = []
        target = None
        for i, ev in enumerate(events):
            if ev.first_seq != last + 1 or ev.last_seq < ev.first_seq:
                return False  # the log history is not a valid anchor sequence
            prev = acc
            acc = accumulate(acc, ev.root, ev.first_seq, ev.last_seq)
            last = ev.last_seq
            if acc != ev.accumulator:
                return False  # emitted accumulator disagrees with the formula
            states.append((acc, last))
            if target is None and (ev.root, ev.first_seq, ev.last_seq) == (root, first_seq, last_seq):
                target = (i, prev)
        if target is None:
            return False
        i, prev_acc = target
        head_acc, head_last = self.head(block=snapshot)
        later = [(ev.root, ev.first_seq, ev.last_seq) for ev in events[i + 1:]]
        if (acc, last) != (head_acc, head_last):
            # Head moved past our logs (e.g. retired: lastSeq = 2**64-1) or logs are incomplete:
            # accept only a replayed state after the target that the contract knows.
            end_state = None
            for j in range(len(states) - 1, i - 1, -1):
                if self._call("isKnownState", states[j][0], states[j][1], block=snapshot):
                    end_state = j
                    break
            if end_state is None:
                return False
            later = later[: end_state - i]
        if len(later) <= 256:  # defence in depth: the contract's own check must agree
            if not self._call("isAnchored", root, first_seq, last_seq, prev_acc, later, block=snapshot):
                return False
        return True

    def batch_history(self, *, at_block: int | None = None) -> tuple[list[AnchoredEvent], list[str]]:
        """Every batch the contract holds, from its Anchored events, and what is wrong with that
        history: the accumulator replayed from GENESIS (computed, not read) must reproduce each
        emitted accumulator and land on the contract's head, read at the same block, so no
        batch can be hidden, added or altered without the replay saying so."""
        contract = self._need_contract()
        snapshot = self.block_number() if at_block is None else at_block
        events = self.anchored_events(to_block=snapshot)
        acc, last, problems = genesis(self.chain_id, contract.address), 0, []
        for ev in events:
            if ev.first_seq != last + 1 or ev.last_seq < ev.first_seq:
                problems.append(f"batch {ev.first_seq}..{ev.last_seq} does not follow seq {last} (tx {ev.tx_hash})")
            acc = accumulate(acc, ev.root, ev.first_seq, ev.last_seq)
            last = ev.last_seq
            if acc != ev.accumulator:
                problems.append(f"batch {ev.first_seq}..{ev.last_seq}: emitted accumulator differs from the replay")
        head_acc, head_last = self.head(block=snapshot)
        if (acc, last) != (head_acc, head_last) and not self._call("isKnownState", acc, last, block=snapshot):
            problems.append(f"the contract's head (lastSeq {head_last}, accumulator 0x{head_acc.hex()}) differs "
                            f"from the replay of its events (lastSeq {last}, accumulator 0x{acc.hex()})")
        retirement = self.retirement_of(events, head_last)
        if retirement is not None and retirement.hostile:
            problems.append(retirement.message)
        return events, problems

    def retirement(self, *, at_block: int | None = None) -> Retirement | None:
        """None while the contract takes honest batches; otherwise whether its admin retired it,
        or an anchoring key anchored a hostile batch (chain_types.implausible: ending at 2**64-1 or
        past IMPLAUSIBLE_SEQ, or larger than MAX_BATCH_SIZE), with or without the admin's
        retire() after it. Reads the head and the Anchored events (a huge batch below the bounds
        leaves the head looking ordinary), and the hostile batch's transaction for its sender."""
        snapshot = self.block_number() if at_block is None else at_block
        _, head_last = self.head(block=snapshot)
        return self.retirement_of(self.anchored_events(to_block=snapshot), head_last)

    def retirement_of(self, events: list[AnchoredEvent], head_last: int) -> Retirement | None:
        """The retirement shown by these events and the head's lastSeq (see `retirement`): the
        first hostile batch if any (nothing after it is honest), else the admin's retire()."""
        admin_retired = head_last == UINT64_MAX and not (events and events[-1].last_seq == UINT64_MAX)
        for ev in events:
            if implausible(ev.first_seq, ev.last_seq):
                return Retirement(hostile=True, at_seq=ev.first_seq, last_seq=ev.last_seq, tx_hash=ev.tx_hash,
                                  block=ev.block, sender=self.sender_of(ev.tx_hash), admin_retired=admin_retired)
        if head_last != UINT64_MAX:
            return None
        return Retirement(hostile=False, at_seq=(events[-1].last_seq if events else 0) + 1, admin_retired=True)

    def checkpointed_through(self, *, before_seq: int | None = None, to_block: int | str = "latest") -> int:
        """The highest lastSeq recorded by `checkpoint()` or `retire()` (Checkpointed events),
        below `before_seq` if given (e.g. a hostile batch's first seq: a checkpoint of the head after
        it vouches for nothing), 0 if none: batches through it were on chain before it was taken."""
        end = self._resolve_block(to_block)
        seqs = (int(abi_decode(["uint64"], bytes(lg["data"]))[0]) for lg in self._logs([CHECKPOINTED_TOPIC], 0, end))
        return max((q for q in seqs if before_seq is None or q < before_seq), default=0)

    def admin_is_anchorer(self) -> bool:
        """True if the primary anchoring key also holds the admin role: once that key leaks, the
        attacker can renounce the admin role or grant itself more anchoring keys, and nobody can
        retire the contract (docs/anchoring.md). Two eth_calls."""
        anchorer = self._call("ANCHORER")
        return bool(self._call("hasRole", b"\x00" * 32, anchorer))  # DEFAULT_ADMIN_ROLE is 0x00..00

    def sender_of(self, tx_hash: str) -> str | None:
        """The key that sent a transaction (None if the node no longer has it)."""
        try:
            with self._rpc("eth_getTransactionByHash", revert_as=ChainError):
                return to_checksum_address(self.w3.eth.get_transaction(tx_hash)["from"])
        except ChainUnavailable:
            raise
        except (ChainError, KeyError):
            return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._label}, chain_id={self.chain_id}, contract={self.contract_address})"
