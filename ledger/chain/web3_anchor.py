"""The server's chain writer for the Anchor contract (contracts/Anchor.sol), on web3.py:
deploys it and sends anchors. Reading (events, head, history) is the verifier's
ledger/verify/anchor_reader.py, which this class extends; the wallet uses the reader alone.

Two transports:
- `AnchorChain.embedded()`: an in-process eth-tester / py-evm chain (auto-mines every tx);
- `AnchorChain.connect(url)`: JSON-RPC over HTTP (Hardhat, geth, a public provider).

Transactions are always signed locally with the anchoring key and sent raw
(`eth_sendRawTransaction`); the node never holds a key. No database here: the anchoring service
decides what to anchor and records batches and receipts.

Every expected fault is mapped to ledger.chain.errors (ChainUnavailable, AnchorReverted,
WrongContract, InsufficientFunds, ChainError); web3 / requests / eth-tester exception types
do not escape.
"""
from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

from eth_abi import decode as abi_decode
from eth_account import Account
from eth_utils import to_checksum_address
from eth_utils.exceptions import ValidationError as _EthValidationError
from web3 import Web3
from web3.exceptions import (
    BlockNotFound,
    TransactionNotFound,
    Web3Exception,
    Web3RPCError,
)

from ledger.chain import fees as F
from ledger.chain.errors import (
    AdminIsAnchorer,
    AnchorReverted,
    ChainError,
    ChainUnavailable,
    InsufficientFunds,
)
from ledger.chain.types import FeeQuote, SentTx, TxStatus
from ledger.core.codec import hex0x
from ledger.core.hashing import keccak256
from ledger.core.typed_data import UINT64_MAX
from ledger.verify.anchor_reader import (
    CONNECTION_ERRORS,
    AnchorReader,
    ContractLogicError,
    norm_hash,
    short,
)

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
EMBEDDED_FUNDING_WEI = 10 * 10**18
DEFAULT_PRIORITY_FEE = 10**9  # 1 gwei, when the node has no eth_maxPriorityFeePerGas
GAS_LIMIT_MARGIN = 1.25  # gas limit = estimate * margin (the estimate already succeeded)
# Gas of one anchor call by the primary key, the most measured (docs/anchoring.md, "Gas"): used
# to price a batch when no estimate can be made (no contract yet, another key).
ANCHOR_GAS = 29_786


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


class AnchorChain(AnchorReader):
    """The anchoring key's view of one Anchor contract: everything AnchorReader reads, plus
    deploying the contract and sending anchors. See the module docstring."""

    revert_errors = (ContractLogicError, _TesterTxFailed)
    node_errors = (Web3RPCError, Web3Exception, _PyEVMError, _EthValidationError, *_TESTER_ERRORS)

    def __init__(
        self,
        w3: Web3,
        *,
        private_key: bytes | None = None,
        artifact: dict | None = None,
        embedded_tester: Any = None,
        label: str = "",
    ):
        self._artifact = artifact or load_artifact()
        self._errors = _error_table(self._artifact["abi"])
        self._tester = embedded_tester  # eth_tester.EthereumTester for embedded chains
        self._send_lock = threading.Lock()
        self._estimate_tag: str | None = None if embedded_tester is not None else "pending"
        if private_key is not None:
            self._account = Account.from_key(bytes(private_key))
            self.sender: str | None = self._account.address
        else:
            self._account = None
            self.sender = None
        super().__init__(w3, abi=self._artifact["abi"],
                         label=label or ("embedded" if embedded_tester is not None else "json-rpc"))

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
    def connect(cls, url: str, *, private_key: bytes | None = None, contract_address: str | None = None,
                timeout: float = 10.0, expected_chain_id: int | None = None) -> AnchorChain:
        """JSON-RPC over HTTP(S), as AnchorReader.connect; private_key None => read-only."""
        return super().connect(url, contract_address=contract_address, timeout=timeout,
                               expected_chain_id=expected_chain_id, private_key=private_key)

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

    def _reverted(self, exc: BaseException, what: str, cls: type[ChainError] | None) -> ChainError:
        """A revert while sending is AnchorReverted with the contract's decoded error."""
        cls = cls or AnchorReverted
        data = _revert_data(exc)
        name, args = self.decode_revert(data)
        detail = short(exc) if name is None else name + "(" + ", ".join(f"{k}={v}" for k, v in args.items()) + ")"
        message = f"{what}: reverted: {detail}"
        if name == "NotContiguous" and args.get("expectedFirstSeq") == 0:
            # the contract's prevLast + 1 wrapped in uint64: its last seq is 2**64 - 1
            message += (" - the contract is retired (its last seq is 2**64-1: retired by its admin, or by a hostile "
                        "batch), so nothing can be anchored in it any more")
        if cls is AnchorReverted:
            return AnchorReverted(message, error_name=name, error_args=args, data=data)
        return cls(message)

    def _node_fault(self, exc: BaseException, what: str, text: str) -> ChainError:
        if any(k in text for k in ("insufficient funds", "enough funds", "cannot afford")):
            return InsufficientFunds(f"{what}: {self.sender or 'the sender'} cannot pay for gas ({short(exc)})")
        return ChainError(f"{what}: {short(exc)}")

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
            k: (hex0x(v) if isinstance(v, bytes) else v) for k, v in zip(names, values, strict=True)
        }

    # ------------------------------------------------------------------ deploying

    def _need_key(self, what: str):
        if self._account is None:
            raise ChainError(f"{what}: this AnchorChain is read-only (no private key)")
        return self._account

    def deploy(self, *, admin: str | None = None, single_key_for_testing: bool = False) -> tuple[str, int]:
        """Deploy Anchor(admin, anchorer=sender); wait for the receipt; select it.

        The admin (who retires the contract if an anchoring key leaks) must be another key than
        the anchoring key, else AdminIsAnchorer: with both roles a leaked key could renounce the
        admin role or add anchoring keys, and nobody could retire the contract any more. On the
        embedded chain `admin=None` means another eth-tester account, so tests and the demo
        deploy with two keys; on a node the admin must be given. `single_key_for_testing=True`
        allows admin == sender (and admin=None then means the sender), for throwaway chains."""
        account = self._need_key("deploy")
        admin_addr = self._admin_for(account.address, admin, single_key_for_testing)
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

    def _admin_for(self, anchorer: str, admin: str | None, single_key: bool) -> str:
        if admin is not None:
            admin_addr = to_checksum_address(admin)
        elif single_key:
            admin_addr = anchorer
        elif self._tester is not None:  # embedded: another funded tester account, a second key
            admin_addr = next(to_checksum_address(a) for a in self._tester.get_accounts()
                              if a.lower() != anchorer.lower())
        else:
            raise AdminIsAnchorer("deploy Anchor: give the admin's address, another key than the anchoring key "
                                  f"{anchorer} (keep it cold: it retires the contract if the anchoring key leaks)")
        if admin_addr == anchorer and not single_key:
            raise AdminIsAnchorer(f"deploy Anchor: the admin {admin_addr} is the anchoring key itself; a leaked "
                                  "anchoring key could then renounce the admin role or add anchoring keys, and "
                                  "nobody could retire the contract: give another (cold) key as admin")
        return admin_addr

    # ------------------------------------------------------------------ sending

    def _fees(self) -> dict:
        return self.fee_quote().tx_fields()

    # the tip when the node has no eth_maxPriorityFeePerGas: 1 gwei, or less on a chain preset whose
    # typical fee is lower (OP Stack, Arbitrum: 0.001-0.01 gwei), set by `anchor_settings`
    fallback_tip = DEFAULT_PRIORITY_FEE

    def _tip(self, priority_fee: int | None) -> int:
        if priority_fee is not None:
            return priority_fee
        try:
            return int(self.w3.eth.max_priority_fee)
        except (Web3RPCError, Web3Exception, ValueError):
            return self.fallback_tip

    def fee_quote(self, *, max_fee_per_gas: int | None = None, priority_fee: int | None = None) -> FeeQuote:
        """What a transaction sent now pays per gas (ledger/chain/fees.py): type-2 fees on a chain
        with a base fee (the *next* block's base fee where the node tells it, else the latest's
        raised by the 12.5% one block can add), a legacy gas price otherwise; `postponed` set when
        that exceeds `max_fee_per_gas`."""
        with self._rpc("fee quote"):
            latest = self.w3.eth.get_block("latest")
            base = latest.get("baseFeePerGas")
            if base is None:
                return F.quote(base_fee=None, tip=0, gas_price=int(self.w3.eth.gas_price), cap=max_fee_per_gas)
            try:
                nxt = self.w3.eth.get_block("pending").get("baseFeePerGas")
            except (Web3RPCError, Web3Exception, ValueError, TypeError, KeyError):
                nxt = None
            base = int(nxt) if nxt is not None else int(base) + -(-int(base) // 8)
            return F.quote(base_fee=base, tip=self._tip(priority_fee), cap=max_fee_per_gas)

    def _estimate(self, tx: dict) -> int:
        """eth_estimateGas against the *pending* state where the node supports it, so that an
        anchor can be sent while the previous one is still in the mempool (its nonce comes from
        the pending count too); otherwise against the latest block (eth-tester auto-mines)."""
        if self._estimate_tag == "pending":
            try:
                return int(self.w3.eth.estimate_gas(tx, block_identifier="pending"))
            except self.revert_errors:
                raise
            except (Web3RPCError, ValueError) as exc:
                if isinstance(exc, CONNECTION_ERRORS):
                    raise
                self._estimate_tag = None  # node refuses the tag: estimate on latest from now on
        return int(self.w3.eth.estimate_gas(tx))

    def _sign_and_send(self, tx: dict, what: str) -> str:
        """Estimate (reverts surface here), price, nonce (pending), sign locally, send raw.
        Caller wraps in self._rpc."""
        return self._send(tx, what).tx_hash

    def _send(self, tx: dict, what: str, *, fees: FeeQuote | None = None, nonce: int | None = None) -> SentTx:
        """As _sign_and_send, with given fees and nonce. A given nonce may already carry a
        transaction of ours in the node's pool (a replacement): the gas is then estimated on the
        latest block, where that transaction is not mined yet (on the pending state it would be,
        and this one would seem to revert)."""
        account = self._need_key(what)
        with self._send_lock:
            estimate = int(self.w3.eth.estimate_gas(tx)) if nonce is not None else self._estimate(tx)
            tx = dict(tx)
            tx["gas"] = int(estimate * GAS_LIMIT_MARGIN) + 1_000
            fees = fees or self.fee_quote()
            tx.update(fees.tx_fields())
            tx["nonce"] = nonce if nonce is not None else self.w3.eth.get_transaction_count(account.address, "pending")
            signed = account.sign_transaction(tx)
            try:
                sent = self.w3.eth.send_raw_transaction(signed.raw_transaction)
            except (Web3RPCError, ValueError) as exc:
                # this very transaction is already in the node's pool (sent before a crash, before it
                # could be recorded): it is sent, under the hash it was signed to
                if not any(k in str(exc).lower() for k in ("already known", "known transaction")):
                    raise
                sent = bytes(signed.hash)
        return SentTx(norm_hash(bytes(sent)), int(tx["nonce"]), fees.max_fee, fees.tip)

    def _anchor_tx(self, root: bytes, first_seq: int, last_seq: int, sender: str) -> tuple[dict, str]:
        contract = self._need_contract()
        root = bytes(root)
        if len(root) != 32:
            raise ValueError("root must be 32 bytes")
        if not (0 <= first_seq <= UINT64_MAX and 0 <= last_seq <= UINT64_MAX):
            raise ValueError("sequence numbers must fit in uint64")
        what = f"anchor({hex0x(root)}, {first_seq}, {last_seq})"
        data = contract.encode_abi("anchor", args=[root, first_seq, last_seq])
        return {"from": sender, "to": contract.address, "data": data, "value": 0, "chainId": self.chain_id}, what

    def send_anchor(self, root: bytes, first_seq: int, last_seq: int) -> str:
        """Sign and send anchor(root, firstSeq, lastSeq); return the tx hash once the node
        accepted it (not mined). AnchorReverted (decoded error) if the contract would refuse."""
        return self.send_anchor_tx(root, first_seq, last_seq).tx_hash

    def send_anchor_tx(self, root: bytes, first_seq: int, last_seq: int, *, fees: FeeQuote | None = None,
                       nonce: int | None = None) -> SentTx:
        """As send_anchor, with the fees to pay (else the node's current ones) and the nonce (else
        the next one): the same nonce with raised fees replaces a stuck transaction."""
        account = self._need_key("anchor")
        tx, what = self._anchor_tx(root, first_seq, last_seq, account.address)
        with self._rpc(what):
            return self._send(tx, what, fees=fees, nonce=nonce)

    def estimate_anchor_gas(self, root: bytes, first_seq: int, last_seq: int) -> int:
        """eth_estimateGas of the next anchor call, as the anchoring key (or, read-only, as the
        contract's ANCHORER): nothing is signed or sent. AnchorReverted if it would revert."""
        sender = self.sender or to_checksum_address(self._call("ANCHORER"))
        tx, what = self._anchor_tx(root, first_seq, last_seq, sender)
        with self._rpc(f"estimate {what}"):
            return int(self.w3.eth.estimate_gas(tx))

    def nonce_of(self, *, pending: bool = False) -> int:
        """The anchoring key's transaction count: mined (latest) or including the node's pool."""
        account = self._need_key("nonce")
        with self._rpc("eth_getTransactionCount"):
            return int(self.w3.eth.get_transaction_count(account.address, "pending" if pending else "latest"))

    def tx_nonce(self, tx_hash: str) -> int | None:
        """The nonce a transaction was sent at (None if the node no longer has it): an adopted
        batch keeps it, so that a re-send after another drop reuses it."""
        try:
            with self._rpc("eth_getTransactionByHash", revert_as=ChainError):
                return int(self.w3.eth.get_transaction(tx_hash)["nonce"])
        except ChainUnavailable:
            raise
        except (ChainError, KeyError, TypeError, ValueError):
            return None

    def key_balance_wei(self, address: str | None = None) -> int:
        """Balance in wei of the anchoring key (or of `address`) at the latest block: what pays
        for anchoring. ChainUnavailable if the node does not answer."""
        who = address or self.sender
        if who is None:
            raise ChainError("key balance: no anchoring key and no address given")
        with self._rpc("eth_getBalance"):
            return int(self.w3.eth.get_balance(to_checksum_address(who)))

    def block_at_or_before(self, timestamp_s: int) -> int | None:
        """The highest block whose timestamp is at most `timestamp_s` (a binary search: about
        log2(head) eth_getBlockByNumber calls, e.g. 26 on a 40M-block chain), None when even the
        head is older (a clock ahead of the chain's: nothing can be bounded from it)."""
        with self._rpc("eth_getBlockByNumber (search by time)"):
            head = self.w3.eth.get_block("latest")
            if int(head["timestamp"]) <= timestamp_s:
                return None
            lo, hi = 0, int(head["number"])  # timestamp(lo) <= ts < timestamp(hi), or lo = 0
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if int(self.w3.eth.get_block(mid)["timestamp"]) <= timestamp_s:
                    lo = mid
                else:
                    hi = mid
            return lo

    def block_hash(self, number: int) -> str | None:
        """The canonical block hash at `number` (0x-hex), None if the chain is not that long."""
        with self._rpc(f"eth_getBlockByNumber {number}"):
            try:
                block = self.w3.eth.get_block(number)
            except BlockNotFound:
                return None
        h = block.get("hash") if block is not None else None
        return hex0x(bytes(h)) if h is not None else None

    # ------------------------------------------------------------------ status

    def tx_status(self, tx_hash: str, *, min_confirmations: int = 1) -> TxStatus:
        h = norm_hash(tx_hash)
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
        bh = receipt.get("blockHash")
        return TxStatus(h, status, block, gas_used, price, confirmations, hex0x(bytes(bh)) if bh is not None else None)

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

    def __repr__(self) -> str:
        return f"AnchorChain({self._label}, chain_id={self.chain_id}, contract={self.contract_address}, sender={self.sender})"
