"""Chain adapter for the Anchor contract (contracts/Anchor.sol), on web3.py.

Two transports:
- `AnchorChain.embedded()`: an in-process eth-tester / py-evm chain (auto-mines every tx);
- `AnchorChain.connect(url)`: JSON-RPC over HTTP (Hardhat, geth, a public provider).

Transactions are always signed locally with the anchoring key and sent raw
(`eth_sendRawTransaction`); the node never holds a key. No database here: the anchoring service
decides what to anchor and records batches and receipts.

Every expected fault is mapped to ledger.chain.errors (ChainUnavailable, AnchorReverted,
WrongContract, ChainError); web3 / requests / eth-tester exception types do not escape.
"""
from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import requests
from eth_abi import decode as abi_decode
from eth_account import Account
from eth_utils import to_checksum_address
from eth_utils.exceptions import ValidationError as _EthValidationError
from web3 import Web3
from web3.exceptions import (
    BadFunctionCallOutput,
    ContractLogicError,
    ProviderConnectionError,
    TimeExhausted,
    TooManyRequests,
    TransactionNotFound,
    Web3Exception,
    Web3RPCError,
)

from ledger.chain.accumulator import UINT64_MAX, accumulate, genesis
from ledger.chain.errors import AnchorReverted, ChainError, ChainUnavailable, InsufficientFunds, WrongContract
from ledger.chain.types import AnchoredEvent, TxStatus
from ledger.core.hashing import keccak256

try:  # eth-tester is a dependency (embedded chain), but keep JSON-RPC usable without it
    from eth_tester import exceptions as _tx

    _TesterTxFailed: type[Exception] = _tx.TransactionFailed
    _TESTER_ERRORS: tuple[type[Exception], ...] = tuple(
        v for v in vars(_tx).values() if isinstance(v, type) and issubclass(v, Exception)
    )
except ImportError:  # pragma: no cover
    class _TesterTxFailed(Exception):  # type: ignore[no-redef]
        pass

    _TESTER_ERRORS = ()

try:
    from eth.exceptions import PyEVMError as _PyEVMError
except ImportError:  # pragma: no cover
    class _PyEVMError(Exception):  # type: ignore[no-redef]
        pass


ARTIFACT = Path(__file__).resolve().parents[2] / "contracts" / "build" / "Anchor.json"
ANCHORED_TOPIC = keccak256(b"Anchored(bytes32,uint64,uint64,bytes24)")
EMBEDDED_FUNDING_WEI = 10 * 10**18
DEFAULT_PRIORITY_FEE = 10**9  # 1 gwei, when the node has no eth_maxPriorityFeePerGas
GAS_LIMIT_MARGIN = 1.25  # gas limit = estimate * margin (the estimate already succeeded)

_CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
    requests.exceptions.HTTPError,  # 5xx / 4xx from a proxy in front of the node
    requests.exceptions.RequestException,  # anything else of the HTTP transport
    ProviderConnectionError,
    TooManyRequests,  # rate-limited by a provider: transient, like a timeout
    TimeExhausted,
    ConnectionError,  # builtin: refused / reset
    TimeoutError,
)
_REVERT_ERRORS: tuple[type[BaseException], ...] = (ContractLogicError, _TesterTxFailed)


def load_artifact(path: Path | str = ARTIFACT) -> dict:
    try:
        art = json.loads(Path(path).read_text())
        art["abi"], art["bytecode"]
    except (OSError, ValueError, KeyError) as exc:
        raise ChainError(f"cannot read the Anchor artifact {path}: {exc}") from None
    return art


def _error_table(abi: list[dict]) -> dict[bytes, tuple[str, list[str], list[str]]]:
    table = {
        bytes.fromhex("08c379a0"): ("Error", ["reason"], ["string"]),
        bytes.fromhex("4e487b71"): ("Panic", ["code"], ["uint256"]),
    }
    for item in abi:
        if item.get("type") == "error":
            types = [i["type"] for i in item["inputs"]]
            sel = keccak256(f"{item['name']}({','.join(types)})".encode())[:4]
            table[sel] = (item["name"], [i["name"] or f"arg{n}" for n, i in enumerate(item["inputs"])], types)
    return table


def _revert_data(exc: BaseException) -> bytes:
    """Raw revert data from web3's ContractLogicError (.data: hex str or dict) or from
    eth-tester's TransactionFailed (bytes somewhere in the exception chain)."""
    data = getattr(exc, "data", None)
    if isinstance(data, dict):
        data = data.get("data") or data.get("result")
    if isinstance(data, str) and data.startswith("0x"):
        try:
            return bytes.fromhex(data[2:])
        except ValueError:
            pass
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        for arg in e.args:
            if isinstance(arg, (bytes, bytearray)):
                return bytes(arg)
            inner = getattr(arg, "args", None)  # eth.exceptions.Revert(bytes) as an arg
            if inner and isinstance(inner[0], (bytes, bytearray)):
                return bytes(inner[0])
        e = e.__cause__ or e.__context__
    return b""


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]


def _hex(b: bytes) -> str:
    return "0x" + bytes(b).hex()


def _norm_hash(tx_hash: str | bytes) -> str:
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
    return "0x" + raw.hex()


class AnchorChain:
    """Adapter for one Anchor contract on one chain. See the module docstring."""

    log_chunk_blocks = 5_000  # blocks per eth_getLogs; halved automatically if the node refuses

    def __init__(
        self,
        w3: Web3,
        *,
        private_key: bytes | None,
        artifact: dict | None = None,
        embedded_tester: Any = None,
        label: str = "",
    ):
        self.w3 = w3
        self._artifact = artifact or load_artifact()
        self._abi = self._artifact["abi"]
        self._errors = _error_table(self._abi)
        self._tester = embedded_tester  # eth_tester.EthereumTester for embedded chains
        self._label = label or ("embedded" if embedded_tester is not None else "json-rpc")
        self._send_lock = threading.Lock()
        self._estimate_tag: str | None = None if embedded_tester is not None else "pending"
        self._contract = None
        self.contract_address: str | None = None
        self.start_block = 0  # lowest block that can hold Anchored logs (set by deploy())
        if private_key is not None:
            self._account = Account.from_key(bytes(private_key))
            self.sender: str | None = self._account.address
        else:
            self._account = None
            self.sender = None
        with self._rpc("eth_chainId"):
            self.chain_id: int = int(w3.eth.chain_id)

    # ------------------------------------------------------------------ construction

    @classmethod
    def embedded(cls, *, private_key: bytes | None = None) -> AnchorChain:
        """In-process eth-tester/py-evm chain (auto-mines each tx). Without a key, the first
        funded tester account is the anchoring key; with one, that key is funded first."""
        from web3.providers.eth_tester import EthereumTesterProvider

        provider = EthereumTesterProvider()
        tester = provider.ethereum_tester
        w3 = Web3(provider)
        tester_key = tester.backend.account_keys[0].to_bytes()
        chain = cls(w3, private_key=private_key or tester_key, embedded_tester=tester)
        if private_key is not None:
            chain._fund(chain.sender)
        return chain

    @classmethod
    def connect(
        cls,
        url: str,
        *,
        private_key: bytes | None = None,
        contract_address: str | None = None,
        timeout: float = 10.0,
        expected_chain_id: int | None = None,
    ) -> AnchorChain:
        """JSON-RPC over HTTP(S). private_key None => read-only. ChainUnavailable if the node
        does not answer; WrongContract if contract_address is not an Anchor here or the chain
        id differs from expected_chain_id."""
        from web3 import HTTPProvider

        if not url.startswith(("http://", "https://")):
            raise ChainError(f"unsupported chain URL {url!r}: only http:// and https:// JSON-RPC")
        provider = HTTPProvider(
            url,
            request_kwargs={"timeout": timeout},
            exception_retry_configuration=None,  # fail fast; the service decides when to retry
        )
        w3 = Web3(provider)
        chain = cls(w3, private_key=private_key, label=url)
        if expected_chain_id is not None and chain.chain_id != expected_chain_id:
            raise WrongContract(f"{url} is chain id {chain.chain_id}, expected {expected_chain_id}")
        if contract_address is not None:
            chain.use_contract(contract_address)
        return chain

    def with_key(self, private_key: bytes | None) -> AnchorChain:
        """Another adapter on the same connection and contract, with another key (None =
        read-only). On the embedded chain the new key is funded from a tester account."""
        other = AnchorChain(
            self.w3, private_key=private_key, artifact=self._artifact, embedded_tester=self._tester, label=self._label
        )
        other._contract, other.contract_address, other.start_block = self._contract, self.contract_address, self.start_block
        if private_key is not None and self._tester is not None:
            other._fund(other.sender)
        return other

    def _fund(self, address: str) -> None:
        assert self._tester is not None
        funder = self._tester.get_accounts()[0]
        self._tester.send_transaction(
            {"from": funder, "to": address, "value": EMBEDDED_FUNDING_WEI, "gas": 21_000,
             "max_fee_per_gas": 10 * 10**9, "max_priority_fee_per_gas": 10**9}
        )

    # ------------------------------------------------------------------ error mapping

    @contextlib.contextmanager
    def _rpc(self, what: str, *, revert_as: type[ChainError] = AnchorReverted) -> Iterator[None]:
        try:
            yield
        except ChainError:
            raise
        except _REVERT_ERRORS as exc:
            raise self._reverted(exc, what, revert_as) from None
        except _CONNECTION_ERRORS as exc:
            raise ChainUnavailable(f"{what}: chain node {self._label} unavailable ({_short(exc)})") from None
        except (Web3RPCError, Web3Exception, _PyEVMError, _EthValidationError, *_TESTER_ERRORS) as exc:
            text = str(exc).lower()
            if "execution reverted" in text or "transaction reverted" in text:
                raise self._reverted(exc, what, revert_as) from None
            if any(k in text for k in ("insufficient funds", "enough funds", "cannot afford")):
                who = self.sender or "the sender"
                raise InsufficientFunds(f"{what}: {who} cannot pay for gas ({_short(exc)})") from None
            raise ChainError(f"{what}: {_short(exc)}") from None
        except OSError as exc:  # socket-level failures not wrapped by requests
            raise ChainUnavailable(f"{what}: chain node {self._label} unavailable ({_short(exc)})") from None

    def _reverted(self, exc: BaseException, what: str, cls: type[ChainError]) -> ChainError:
        data = _revert_data(exc)
        name, args = self.decode_revert(data)
        if name is None:
            detail = _short(exc)
        else:
            detail = name + "(" + ", ".join(f"{k}={v}" for k, v in args.items()) + ")"
        message = f"{what}: reverted: {detail}"
        if cls is AnchorReverted:
            return AnchorReverted(message, error_name=name, error_args=args, data=data)
        return cls(message)

    def decode_revert(self, data: bytes) -> tuple[str | None, dict]:
        """(error name, {arg: value}) for revert data of the Anchor ABI, Error(string), Panic."""
        if len(data) < 4 or data[:4] not in self._errors:
            return None, {}
        name, names, types = self._errors[data[:4]]
        try:
            values = abi_decode(types, data[4:]) if types else ()
        except Exception:  # noqa: BLE001 - malformed revert payload: keep the name
            return name, {}
        return name, {
            k: ("0x" + v.hex() if isinstance(v, bytes) else v) for k, v in zip(names, values, strict=True)
        }

    # ------------------------------------------------------------------ contract

    def _need_contract(self):
        if self._contract is None:
            raise ChainError("no Anchor contract selected: call deploy() or use_contract() first")
        return self._contract

    def _need_key(self, what: str):
        if self._account is None:
            raise ChainError(f"{what}: this AnchorChain is read-only (no private key)")
        return self._account

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
        want = genesis(self.chain_id, checksummed)
        if got != want:
            raise WrongContract(
                f"{checksummed} is not an Ayni Anchor for chain id {self.chain_id} at this address (GENESIS mismatch)"
            )
        self._contract = contract
        self.contract_address = checksummed

    def deploy(self, *, admin: str | None = None) -> tuple[str, int]:
        """Deploy Anchor(admin or sender, anchorer=sender); wait for the receipt; select it."""
        account = self._need_key("deploy")
        admin_addr = to_checksum_address(admin) if admin is not None else account.address
        factory = self.w3.eth.contract(abi=self._abi, bytecode=self._artifact["bytecode"])
        with self._rpc("deploy Anchor"):
            data = factory.constructor(admin_addr, account.address).data_in_transaction
            tx = {"from": account.address, "data": data, "value": 0, "chainId": self.chain_id}
            tx_hash = self._sign_and_send(tx, "deploy Anchor")
        status = self.wait(tx_hash, timeout=120.0)
        if status.status != "confirmed":
            if status.status == "failed":
                raise AnchorReverted(f"deploy Anchor: transaction {tx_hash} reverted")
            raise ChainError(f"deploy Anchor: transaction {tx_hash} still {status.status} after 120 s")
        with self._rpc("eth_getTransactionReceipt"):
            receipt = self.w3.eth.get_transaction_receipt(tx_hash)
        address = to_checksum_address(receipt["contractAddress"])
        self.use_contract(address)
        self.start_block = int(receipt["blockNumber"])
        return address, int(receipt["gasUsed"])

    # ------------------------------------------------------------------ sending

    def _fees(self) -> dict:
        block = self.w3.eth.get_block("latest")
        base = block.get("baseFeePerGas")
        if base is None:
            return {"gasPrice": int(self.w3.eth.gas_price)}
        try:
            tip = int(self.w3.eth.max_priority_fee)
        except (Web3RPCError, Web3Exception, ValueError):
            tip = DEFAULT_PRIORITY_FEE
        return {"maxPriorityFeePerGas": tip, "maxFeePerGas": 2 * int(base) + tip}

    def _estimate(self, tx: dict) -> int:
        """eth_estimateGas against the *pending* state where the node supports it, so that an
        anchor can be sent while the previous one is still in the mempool (its nonce comes from
        the pending count too); otherwise against the latest block (eth-tester auto-mines)."""
        if self._estimate_tag == "pending":
            try:
                return int(self.w3.eth.estimate_gas(tx, block_identifier="pending"))
            except _REVERT_ERRORS:
                raise
            except (Web3RPCError, ValueError) as exc:
                if isinstance(exc, _CONNECTION_ERRORS):
                    raise
                self._estimate_tag = None  # node refuses the tag: estimate on latest from now on
        return int(self.w3.eth.estimate_gas(tx))

    def _sign_and_send(self, tx: dict, what: str) -> str:
        """Estimate (reverts surface here), price, nonce (pending), sign locally, send raw.
        Caller wraps in self._rpc."""
        account = self._need_key(what)
        with self._send_lock:
            estimate = self._estimate(tx)
            tx = dict(tx)
            tx["gas"] = int(estimate * GAS_LIMIT_MARGIN) + 1_000
            tx.update(self._fees())
            tx["nonce"] = self.w3.eth.get_transaction_count(account.address, "pending")
            signed = account.sign_transaction(tx)
            sent = self.w3.eth.send_raw_transaction(signed.raw_transaction)
        return _norm_hash(bytes(sent))

    def send_anchor(self, root: bytes, first_seq: int, last_seq: int) -> str:
        """Sign and send anchor(root, firstSeq, lastSeq); return the tx hash once the node
        accepted it (not mined). AnchorReverted (decoded error) if the contract would refuse."""
        contract = self._need_contract()
        account = self._need_key("anchor")
        root = bytes(root)
        if len(root) != 32:
            raise ValueError("root must be 32 bytes")
        if not (0 <= first_seq <= UINT64_MAX and 0 <= last_seq <= UINT64_MAX):
            raise ValueError("sequence numbers must fit in uint64")
        what = f"anchor({_hex(root)}, {first_seq}, {last_seq})"
        with self._rpc(what):
            data = contract.encode_abi("anchor", args=[root, first_seq, last_seq])
            tx = {"from": account.address, "to": contract.address, "data": data, "value": 0, "chainId": self.chain_id}
            return self._sign_and_send(tx, what)

    # ------------------------------------------------------------------ status

    def block_number(self) -> int:
        with self._rpc("eth_blockNumber"):
            return int(self.w3.eth.block_number)

    def tx_status(self, tx_hash: str, *, min_confirmations: int = 1) -> TxStatus:
        h = _norm_hash(tx_hash)
        with self._rpc(f"status of {h}"):
            try:
                receipt = self.w3.eth.get_transaction_receipt(h)
            except TransactionNotFound:
                receipt = None
            if receipt is None or receipt.get("blockNumber") is None:
                try:
                    known = self.w3.eth.get_transaction(h) is not None
                except TransactionNotFound:
                    known = False
                return TxStatus(h, "pending" if known else "unknown", None, None, None, 0)
            block = int(receipt["blockNumber"])
            head = int(self.w3.eth.block_number)
        confirmations = max(0, head - block + 1)
        gas_used = int(receipt["gasUsed"])
        price = receipt.get("effectiveGasPrice")
        price = int(price) if price is not None else None
        if int(receipt["status"]) != 1:
            status = "failed"
        elif confirmations >= min_confirmations:
            status = "confirmed"
        else:
            status = "pending"
        return TxStatus(h, status, block, gas_used, price, confirmations)

    def wait(self, tx_hash: str, *, min_confirmations: int = 1, timeout: float = 30.0) -> TxStatus:
        """Poll tx_status until confirmed or failed; after `timeout` return the last status
        (pending or unknown). Connection faults raise ChainUnavailable."""
        deadline = time.monotonic() + timeout
        delay = 0.02
        while True:
            st = self.tx_status(tx_hash, min_confirmations=min_confirmations)
            if st.status in ("confirmed", "failed") or time.monotonic() >= deadline:
                return st
            time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
            delay = min(delay * 2, 1.0)

    def mine(self, blocks: int = 1) -> None:
        """Mine empty blocks: eth-tester on the embedded chain, evm_mine on a dev node (Hardhat,
        Anvil). ChainError on a real network. For tests of confirmation depth."""
        with self._rpc("mine"):
            if self._tester is not None:
                self._tester.mine_blocks(blocks)
            else:
                for _ in range(blocks):
                    self.w3.provider.make_request("evm_mine", [])

    # ------------------------------------------------------------------ reading the contract

    def _call(self, fn: str, *args, block: int | str = "latest"):
        contract = self._need_contract()
        with self._rpc(f"{fn}()", revert_as=ChainError):
            try:
                return getattr(contract.functions, fn)(*args).call(block_identifier=block)
            except BadFunctionCallOutput as exc:
                raise WrongContract(f"{fn}() returned no data at {contract.address}: {_short(exc)}") from None

    def last_anchored_seq(self) -> int:
        return int(self._call("lastAnchoredSeq"))

    def head(self, *, block: int | str = "latest") -> tuple[bytes, int]:
        acc, last = self._call("head", block=block)
        return bytes(acc), int(last)

    def genesis_accumulator(self) -> bytes:
        return bytes(self._call("GENESIS"))

    def contract_accumulate(self, acc: bytes, root: bytes, first_seq: int, last_seq: int) -> bytes:
        """The contract's own `accumulate` view (to cross-check the Python one)."""
        return bytes(self._call("accumulate", acc, root, first_seq, last_seq))

    def is_anchorer(self, address: str | None = None) -> bool:
        """Whether `address` (default: this adapter's key) may call anchor()."""
        addr = address or self.sender
        if addr is None:
            return False
        return bool(self._call("isAnchorer", to_checksum_address(addr)))

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
            tx_hash=_norm_hash(bytes(log["transactionHash"])),
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
        retire()). When the proof is short, the contract's own isAnchored() must agree too."""
        contract = self._need_contract()
        root = bytes(root)
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
        later = [(ev.root, ev.first_seq, ev.last_seq) for ev in events[i + 1 :]]
        if (acc, last) == (head_acc, head_last):
            end_state = len(states) - 1
        else:
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
            ok = self._call("isAnchored", root, first_seq, last_seq, prev_acc, later, block=snapshot)
            if not ok:
                return False
        return True

    def block_time_ms(self, block: int) -> int:
        with self._rpc("eth_getBlockByNumber", revert_as=ChainError):
            return int(self.w3.eth.get_block(block)["timestamp"]) * 1000

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
        return events, problems

    # ------------------------------------------------------------------ privacy audit

    def transcript(self, *, from_block: int = 0) -> list[bytes]:
        """Every byte this chain holds that we could have leaked: for each tx in blocks
        from_block..latest its input data, and every log's topics and data."""
        out: list[bytes] = []
        end = self.block_number()
        with self._rpc("transcript"):
            for n in range(from_block, end + 1):
                block = self.w3.eth.get_block(n, full_transactions=True)
                for tx in block["transactions"]:
                    # JSON-RPC nodes call it "input"; eth-tester's formatter leaves "data"
                    out.append(bytes(tx["input"] if "input" in tx else tx["data"]))
                    receipt = self.w3.eth.get_transaction_receipt(tx["hash"])
                    for lg in receipt["logs"]:
                        out.extend(bytes(t) for t in lg["topics"])
                        out.append(bytes(lg["data"]))
        return out

    def __repr__(self) -> str:
        return f"AnchorChain({self._label}, chain_id={self.chain_id}, contract={self.contract_address}, sender={self.sender})"
