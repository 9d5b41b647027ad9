"""Measurements for the cost report, all taken in the same run, nothing assumed:

- gas of real transactions on the embedded EVM (py-evm via eth-tester): Ayni's anchoring through
  the real pipeline (signed transfers -> SQL log -> Merkle root -> Anchor.anchor), MutualCredit.sol
  (every transfer on chain, sent by the payer or relayed with the payer's EIP-712 signature) and
  an OpenZeppelin ERC-20;
- the size of each of those transactions: its calldata, and the whole transaction signed
  (EIP-1559, re-signed with a throwaway key), which is what a rollup's L1 data fee is charged on;
- the off-chain service's own cost: process CPU seconds and database bytes per signed transfer
  posted through `ledger.service.Ledger` on SQLite and, when reachable, PostgreSQL.
"""
from __future__ import annotations

import json
import secrets
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .. import signing
from ..core.typed_data import Domain, Transfer, address_of_key, full_message
from ..sample import SampleCommunity, round_robin_transfers
from ..service import Ledger

BUILD = Path(__file__).resolve().parents[2] / "contracts" / "build"
NO_CEILING = 2**64 - 1
HOUR, CRED = b"HOUR".ljust(12, b"\0"), b"CRED".ljust(12, b"\0")


class MeasureError(RuntimeError):
    """A measurement could not be taken (e.g. a transaction reverted)."""


@dataclass
class GasFigures:
    """gasUsed from transaction receipts."""
    anchor: int                      # mean per anchor call, real pipeline
    anchor_calls: list[int]
    anchor_deploy: int
    mc_deploy: int
    mc_add_currency: int
    mc_open_account: int             # opens both currencies (HOUR, CRED) with default limits
    mc_set_limit: int
    mc_freeze: int
    mc_transfer_first: int           # to a freshly opened account
    mc_transfer_repeat: int
    mc_transfer_sig_new_word: int    # relayed, nonce in a fresh bitmap word (Ayni's random nonces)
    mc_transfer_sig_same_word: int   # relayed, nonce in a word already used (sequential nonces)
    erc20_deploy: int
    erc20_transfer_new_holder: int
    erc20_transfer_existing: int
    eth_funding: int                 # plain ETH send, so a member can pay gas herself
    # bytes of each kind of transaction: {"calldata": n, "signed": n} (keys: see TX_KINDS)
    tx_bytes: dict[str, dict[str, int]] = field(default_factory=dict)

    def signed_bytes(self, kind: str) -> int:
        return self.tx_bytes[kind]["signed"] if kind in self.tx_bytes else 0

    def to_json(self) -> dict:
        return asdict(self)


# the transaction kinds whose size is measured (keys of GasFigures.tx_bytes)
TX_KINDS = ("anchor", "anchor_deploy", "mc_deploy", "mc_add_currency", "mc_open_account", "mc_transfer",
            "mc_transfer_sig", "erc20_deploy", "erc20_transfer_new_holder", "erc20_transfer", "eth_funding")


@dataclass
class OffChain:
    backend: str
    transfers: int
    cpu_s_per_transfer: float | None = None
    wall_s_per_transfer: float | None = None
    db_bytes_per_transfer: float | None = None
    skipped: str | None = None
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return asdict(self)


def artifact(name: str) -> dict:
    return json.loads((BUILD / f"{name}.json").read_text())


def tx_size(w3, tx_hash) -> dict[str, int]:
    """Calldata bytes of a mined transaction, and the bytes of the same transaction signed as an
    EIP-1559 transaction (eth-tester's unlocked accounts keep no raw transaction, so it is re-signed
    with a throwaway key: same fields, a real 65-byte signature)."""
    from eth_account import Account
    tx = w3.eth.get_transaction(tx_hash)
    data = bytes(tx["input"])
    fee = int(tx.get("maxFeePerGas") or tx.get("gasPrice") or 1)
    raw = Account.sign_transaction({
        "type": 2, "chainId": int(w3.eth.chain_id), "nonce": int(tx["nonce"]), "to": tx.get("to") or b"",
        "value": int(tx["value"]), "data": data, "gas": int(tx["gas"]), "maxFeePerGas": fee,
        "maxPriorityFeePerGas": int(tx.get("maxPriorityFeePerGas") or fee)}, signing.new_key()).raw_transaction
    return {"calldata": len(data), "signed": len(raw)}


def anchor_tx_sizes(w3, contract: str) -> dict[str, int]:
    """Size of the last anchor transaction sent to `contract` on this chain."""
    for n in range(w3.eth.block_number, -1, -1):
        for h in reversed(w3.eth.get_block(n)["transactions"]):
            tx = w3.eth.get_transaction(h)
            if tx.get("to") and tx["to"].lower() == contract.lower():
                return tx_size(w3, h)
    raise MeasureError(f"no anchor transaction to {contract} found on the chain")


# ------------------------------------------------------------------ on-chain gas

class _Evm:
    """Deploy and call contracts from eth-tester's unlocked, funded accounts; every figure is
    the receipt's gasUsed, and a failed transaction is an error, never a number."""

    def __init__(self, w3):
        self.w3 = w3
        self.accounts = w3.eth.accounts
        self.sizes: dict[str, dict[str, int]] = {}  # kind -> bytes of the last such transaction

    def _receipt(self, tx_hash):
        r = self.w3.eth.wait_for_transaction_receipt(tx_hash)
        if r.status != 1:
            raise MeasureError(f"transaction {tx_hash.hex()} failed")
        return r

    def _used(self, tx_hash, kind: str | None) -> int:
        r = self._receipt(tx_hash)
        if kind:
            self.sizes[kind] = tx_size(self.w3, tx_hash)
        return int(r.gasUsed)

    def deploy(self, name: str, *args, sender=None, kind: str | None = None):
        art = artifact(name)
        factory = self.w3.eth.contract(abi=art["abi"], bytecode=art["bytecode"])
        tx_hash = factory.constructor(*args).transact({"from": sender or self.accounts[0]})
        gas = self._used(tx_hash, kind)
        address = self._receipt(tx_hash).contractAddress
        return self.w3.eth.contract(address=address, abi=art["abi"]), gas

    def gas(self, fn, sender=None, kind: str | None = None) -> int:
        return self._used(fn.transact({"from": sender or self.accounts[0]}), kind)

    def send_eth(self, to: str, wei: int, kind: str | None = None) -> int:
        return self._used(self.w3.eth.send_transaction({"from": self.accounts[0], "to": to, "value": wei}), kind)


def _new_address() -> str:
    """A fresh address with no zero byte: calldata costs 4 gas per zero byte and 16 per other,
    so a random address (7.5% of them hold a zero byte) would make the figures drift by 12 gas
    from run to run; typical addresses have none."""
    while True:
        address = address_of_key(signing.new_key())
        if 0 not in bytes.fromhex(address[2:]):
            return address


def relay_signature(key: bytes, domain: Domain, verifying_contract: str, t: Transfer) -> bytes:
    """The payer's signature for MutualCredit.transferWithSig: Ayni's Transfer type in Ayni's domain
    plus `verifyingContract` (the contract's own domain), signed by eth-account, independently of
    ledger.core's signer."""
    from eth_account import Account
    from eth_account.messages import encode_typed_data
    doc = full_message(domain, t)
    doc["types"]["EIP712Domain"] = [*doc["types"]["EIP712Domain"][:3],
                                    {"name": "verifyingContract", "type": "address"},
                                    doc["types"]["EIP712Domain"][3]]
    doc["domain"]["verifyingContract"] = verifying_contract
    return bytes(Account.sign_message(encode_typed_data(full_message=doc), key).signature)


def measure_mutual_credit(w3) -> dict:
    evm = _Evm(w3)
    admin, alice, relayer = evm.accounts[0], evm.accounts[1], evm.accounts[2]
    community = secrets.token_bytes(32)
    mc, deploy = evm.deploy("MutualCredit", admin, community, kind="mc_deploy")
    f = mc.functions
    add = evm.gas(f.addCurrency(HOUR, 600, 2400), kind="mc_add_currency")
    evm.gas(f.addCurrency(CRED, 10_000, NO_CEILING))
    opened = [evm.gas(f.openAccount(alice))]
    bob = _new_address()
    opened.append(evm.gas(f.openAccount(bob), kind="mc_open_account"))
    first = evm.gas(f.transfer(bob, CRED, 1234), alice)  # bob's first receipt ever
    repeat = evm.gas(f.transfer(bob, CRED, 1234), alice, kind="mc_transfer")
    set_limit = evm.gas(f.setLimit(alice, CRED, 50_000, NO_CEILING))
    carol = _new_address()
    evm.gas(f.openAccount(carol))
    freeze = evm.gas(f.setStatus(carol, 2))
    # relayed: a member who holds no ETH signs an Ayni Transfer for this contract; the relayer pays gas
    key = signing.new_key()
    payer = address_of_key(key)
    evm.gas(f.openAccount(payer))
    domain = Domain(chain_id=int(w3.eth.chain_id), salt=community)
    valid_until = int(w3.eth.get_block("latest")["timestamp"]) + 3600
    word = secrets.randbits(120) << 8

    def relayed(nonce: int, kind: str | None = None) -> int:
        t = Transfer.create(payer=payer, payee=bob, currency="CRED", amount=321, nonce=nonce,
                            valid_until=valid_until)
        sig = relay_signature(key, domain, mc.address, t)
        return evm.gas(f.transferWithSig(t.payer, t.payee, t.currency, t.amount, t.nonce, t.valid_until,
                                         t.memo_hash, t.request_id, sig), relayer, kind=kind)

    # low bytes 1 and 2: both non-zero, so both calls have exactly the same calldata cost
    sig_new, sig_same = relayed(word + 1, "mc_transfer_sig"), relayed(word + 2)
    if f.balanceOf(payer, CRED).call() != -642:
        raise MeasureError("relayed transfers did not move the balance")
    return {"mc_deploy": deploy, "mc_add_currency": add, "mc_open_account": max(opened),
            "mc_set_limit": set_limit, "mc_freeze": freeze, "mc_transfer_first": first,
            "mc_transfer_repeat": repeat, "mc_transfer_sig_new_word": sig_new,
            "mc_transfer_sig_same_word": sig_same, "tx_bytes": evm.sizes}


def measure_erc20(w3) -> dict:
    evm = _Evm(w3)
    treasury, alice = evm.accounts[0], evm.accounts[1]
    token, deploy = evm.deploy("CommunityToken", "Community Credit", "CRED", treasury, 10**12, kind="erc20_deploy")
    f = token.functions
    evm.gas(f.transfer(alice, 100_000))  # alice keeps a balance: emptying it would earn a refund
    newcomer = _new_address()
    to_new = evm.gas(f.transfer(newcomer, 5_000), alice, kind="erc20_transfer_new_holder")
    existing = evm.gas(f.transfer(newcomer, 5_000), alice, kind="erc20_transfer")
    funding = evm.send_eth(_new_address(), 10**15, kind="eth_funding")
    return {"erc20_deploy": deploy, "erc20_transfer_new_holder": to_new, "erc20_transfer_existing": existing,
            "eth_funding": funding, "tx_bytes": evm.sizes}


def gas_figures(anchor: dict, mc: dict, erc20: dict) -> GasFigures:
    """Merge the three measurements (each may carry its own tx_bytes)."""
    sizes = {**anchor.get("tx_bytes", {}), **mc.get("tx_bytes", {}), **erc20.get("tx_bytes", {})}
    strip = lambda d: {k: v for k, v in d.items() if k != "tx_bytes"}  # noqa: E731
    return GasFigures(**strip(anchor), **strip(mc), **strip(erc20), tx_bytes=sizes)


def measure_anchoring(ledger: Ledger, chain=None, *, batches: int = 4) -> dict:
    """Anchor the whole log of `ledger` in `batches` batches through ledger.anchoring."""
    from ..anchoring import Anchoring
    from ..chain import AnchorChain
    chain = chain or AnchorChain.embedded()
    _, deploy_gas = chain.deploy()
    head, _ = ledger.head()
    report = Anchoring(ledger, chain, max_batch=max(1, -(-head // batches))).run()
    if not report.gas_used or report.anchored_through != head:
        raise MeasureError(f"anchoring stopped at seq {report.anchored_through} of {head}: {report.errors}")
    return {"anchor": round(sum(report.gas_used) / len(report.gas_used)), "anchor_calls": list(report.gas_used),
            "anchor_deploy": deploy_gas,
            "tx_bytes": {"anchor": anchor_tx_sizes(chain.w3, chain.contract_address),
                         "anchor_deploy": _deploy_size(chain.w3, chain.contract_address)}}


def _deploy_size(w3, address: str) -> dict[str, int]:
    for n in range(w3.eth.block_number + 1):
        for h in w3.eth.get_block(n)["transactions"]:
            r = w3.eth.get_transaction_receipt(h)
            if r.contractAddress and r.contractAddress.lower() == address.lower():
                return tx_size(w3, h)
    raise MeasureError(f"no deployment of {address} found on the chain")


# ------------------------------------------------------------------ off-chain cost

def _community(url: str, accounts: int):
    # generous limits so that no sampled payment is refused: we measure postings, not refusals
    c = SampleCommunity(url, name="cost-report")
    return c.ledger, c.domain, c.accounts(accounts, credit_limit=2**40)


def _signed(domain, keys, n: int) -> list:
    return round_robin_transfers(domain, keys, n, memo_every=3)


def _post(ledger: Ledger, subs: list) -> tuple[float, float]:
    """Post one signed transfer per database transaction (as the API does); CPU and wall seconds."""
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for s in subs:
        ledger.submit(s)
    return time.process_time() - cpu0, time.perf_counter() - wall0


def _sqlite_bytes(ledger: Ledger, path: Path) -> int:
    """File bytes after moving the WAL into the main file (pooled connections closed first:
    the engine opens every connection inside a transaction, where a checkpoint cannot run)."""
    import sqlite3
    ledger.engine.dispose()
    conn = sqlite3.connect(path)
    try:
        busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    finally:
        conn.close()
    if busy:
        raise MeasureError("could not checkpoint the SQLite WAL to measure the file size")
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))


def measure_sqlite(transfers: int, *, accounts: int = 20, anchor_chain=None, anchor: bool = True) -> tuple[OffChain, dict | None]:
    """Post `transfers` signed transfers on a temporary SQLite file; then (if `anchor`) anchor its log."""
    with tempfile.TemporaryDirectory(prefix="ayni-costs-") as d:
        path = Path(d) / "costs.db"
        ledger, domain, keys = _community(f"sqlite:///{path}", accounts)
        subs = _signed(domain, keys, transfers)
        before = _sqlite_bytes(ledger, path)
        cpu, wall = _post(ledger, subs)
        after = _sqlite_bytes(ledger, path)
        gas = measure_anchoring(ledger, anchor_chain) if anchor else None
        ledger.engine.dispose()
    return OffChain("sqlite", transfers, cpu / transfers, wall / transfers, (after - before) / transfers,
                    notes=["CPU includes signature recovery, rules and SQLite I/O, all in this process"]), gas


def measure_postgres(url: str, transfers: int, *, accounts: int = 20) -> OffChain:
    """Same on PostgreSQL, in a throwaway database created next to `url` and dropped after."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url
    try:
        base = make_url(url)
        if not base.drivername.startswith("postgresql"):
            return OffChain("postgresql", transfers, skipped=f"not a PostgreSQL URL: {base.drivername}")
        if base.drivername == "postgresql":
            base = base.set(drivername="postgresql+psycopg")
        admin = create_engine(base, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5})
        name = f"ayni_costs_{uuid.uuid4().hex[:8]}"
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # noqa: BLE001 - any failure to reach the server means: skip, say why
        return OffChain("postgresql", transfers, skipped=f"PostgreSQL unreachable: {str(exc).splitlines()[0]}")
    try:
        db_url = base.set(database=name).render_as_string(hide_password=False)
        ledger, domain, keys = _community(db_url, accounts)
        subs = _signed(domain, keys, transfers)
        size_sql = text("SELECT pg_database_size(current_database())")
        with ledger.engine.connect() as conn:
            before = conn.execute(size_sql).scalar()
        cpu, wall = _post(ledger, subs)
        with ledger.engine.connect() as conn:
            after = conn.execute(size_sql).scalar()
        ledger.engine.dispose()
        return OffChain("postgresql", transfers, cpu / transfers, wall / transfers, (after - before) / transfers,
                        notes=["CPU is this process only (signature recovery, rules, driver); the server's own "
                               "CPU is the managed database's, paid in its monthly price"])
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@dataclass
class Measurements:
    gas: GasFigures
    offchain: list[OffChain]
    seconds: float
    evm: str = "py-evm (eth-tester), cancun rules"

    def sqlite(self) -> OffChain:
        return next(o for o in self.offchain if o.backend == "sqlite")

    def production(self) -> OffChain:
        """The figures hosting is priced with: PostgreSQL's (what a deployment runs, and what the
        managed database bills) when measured in this run, else SQLite's."""
        pg = next((o for o in self.offchain if o.backend == "postgresql" and not o.skipped), None)
        return pg or self.sqlite()

    def to_json(self) -> dict:
        return {"gas": self.gas.to_json(), "offchain": [o.to_json() for o in self.offchain],
                "seconds": self.seconds, "evm": self.evm}


def measure_all(*, sample: int = 300, postgres_url: str | None = None) -> Measurements:
    from ..chain import AnchorChain
    if sample < 10:
        raise ValueError("the sample must be at least 10 transfers")
    start = time.perf_counter()
    chain = AnchorChain.embedded()
    sqlite, anchor_gas = measure_sqlite(sample, anchor_chain=chain)
    gas = gas_figures(anchor_gas, measure_mutual_credit(chain.w3), measure_erc20(chain.w3))
    pg = (measure_postgres(postgres_url, sample) if postgres_url
          else OffChain("postgresql", 0, skipped="not measured: pass --postgres-url to measure PostgreSQL too"))
    return Measurements(gas, [sqlite, pg], time.perf_counter() - start)
