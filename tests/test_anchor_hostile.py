"""Issue 23, items 4 and 5: a leaked anchoring key and the contract's admin.

Item 4: any anchoring key can call `anchor(x, next, 2**64-1)`, after which the contract takes
no more batches (a hostile retirement). Every honest batch before it, including those anchored
after the last checkpoint, must still verify (on chain and with `ayni-wallet verify`), the
verifier must name the hostile retirement and the seq it happened at, the admin's `retire()`
must say it has nothing left to retire, and the anchorer must say why it stopped.

Item 5: `ayni chain deploy` refuses to make the anchoring key the admin too, unless
`--single-key-for-testing`.

Real components only: py-evm (eth-tester) in-process on SQLite and PostgreSQL, and a Hardhat
node driven through the `ayni` / `ayni-wallet` commands."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ledger import signing
from ledger.anchoring import Anchoring
from ledger.chain import AdminIsAnchorer, AnchorChain, AnchorReverted
from ledger.chain.keys import write_keystore
from ledger.core import errors as E
from ledger.core.hashing import keccak256
from ledger.core.receipts import verify_receipt
from ledger.core.trust_root import TrustRoot
from ledger.core.typed_data import UINT64_MAX, address_of_key
from ledger.service import Ledger
from ledger.verify.anchor_reader import AnchorReader
from ledger.verify.chain_types import IMPLAUSIBLE_SEQ, MAX_BATCH_SIZE
from wallet_cli.verify import check, warnings

from .chain_helpers import contract_view
from .conftest import Community
from .hardhat_node import HARDHAT_CHAIN_ID, HARDHAT_KEYS, hardhat_node

BIN = Path(sys.executable).parent
HOSTILE_ROOT = keccak256(b"a leaked anchoring key")


def send(chain: AnchorChain, fn: str, *args):
    """Sign and send one Anchor call with `chain`'s key (admin calls: the server has none)."""
    with chain._rpc(fn):
        data = chain._contract.encode_abi(fn, args=list(args))
        tx = {"from": chain.sender, "to": chain.contract_address, "data": data, "value": 0,
              "chainId": chain.chain_id}
        status = chain.wait(chain._sign_and_send(tx, fn))
    assert status.status == "confirmed", status
    return status


def reader_of(chain: AnchorChain) -> AnchorReader:
    """The wallet's reader, apart from the server's adapter."""
    reader = AnchorReader(chain.w3)
    reader.use_contract(chain.contract_address)
    return reader


def pay(c: Community, n: int) -> list[int]:
    return [c.ledger.submit(c.pay("ana", "bea", 5 + i, memo="bread")).seq for i in range(n)]


# ------------------------------------------------------------------ embedded chain (py-evm)

def test_a_hostile_retirement_leaves_every_earlier_receipt_provable(db_url):
    c = Community(db_url)
    try:
        for n in ("ana", "bea"):
            c.member(n)
        early = pay(c, 4)
        chain = AnchorChain.embedded()
        admin_key, standby_key = signing.new_key(), signing.new_key()
        chain.deploy(admin=address_of_key(admin_key))
        admin = chain.with_key(admin_key)
        job = Anchoring(c.ledger, chain, max_batch=3)
        job.run()
        send(chain, "checkpoint")  # the last checkpoint ...
        late = pay(c, 5)
        job.run()  # ... and batches anchored after it, which the attack used to make unprovable
        head = c.ledger.head()[0]
        assert chain.last_anchored_seq() == head

        # a standby key leaks (the primary key would do the same)
        send(admin, "grantRole", contract_view(chain, "ANCHOR_ROLE"), address_of_key(standby_key))
        attacker = chain.with_key(standby_key)
        assert attacker.wait(attacker.send_anchor(HOSTILE_ROOT, head + 1, UINT64_MAX)).status == "confirmed"
        assert contract_view(chain, "retired") is True

        reader = reader_of(chain)
        pins = TrustRoot(contract=chain.contract_address, anchor_chain_id=chain.chain_id)
        for seq in (early[0], late[-1]):
            receipt = job.receipt(seq)
            assert verify_receipt(receipt, reader) == [], seq
            assert check(receipt, reader, pins) == [], seq
            b = receipt["batch"]
            assert reader.is_anchored_on_chain(bytes.fromhex(receipt["root"][2:]), b["firstSeq"], b["lastSeq"])
        # the hostile batch itself is never a ledger batch
        assert not reader.is_anchored_on_chain(HOSTILE_ROOT, head + 1, UINT64_MAX)

        # the verifier names it, with the seq
        expected = f"anchor history holds a hostile batch at seq {head + 1}..{UINT64_MAX} by key {attacker.sender}"
        retirement = reader.retirement()
        assert retirement.hostile and retirement.at_seq == head + 1
        assert [w[:len(expected)] for w in warnings(reader)] == [expected]
        _, problems = reader.batch_history()
        assert [p for p in problems if p.startswith(expected)], problems

        # the admin learns that there is nothing left to retire (it used to be a silent no-op)
        with pytest.raises(AnchorReverted) as info:
            send(admin, "retire")
        assert info.value.error_name == "AlreadyRetired"

        # the anchorer stops with the reason, not with a confusing range error
        pay(c, 1)
        with pytest.raises(E.IntegrityViolation, match=f"hostile batch at seq {head + 1}"):
            job.run()
    finally:
        c.dispose()


def test_an_admin_retirement_is_no_warning_and_records_its_checkpoint(sqlite_url):
    c = Community(sqlite_url)
    try:
        for n in ("ana", "bea"):
            c.member(n)
        seqs = pay(c, 3)
        chain = AnchorChain.embedded()
        admin_key = signing.new_key()
        chain.deploy(admin=address_of_key(admin_key))
        admin = chain.with_key(admin_key)
        job = Anchoring(c.ledger, chain, max_batch=2)
        job.run()
        head = c.ledger.head()[0]
        block = send(admin, "retire").block
        # indexers following Checkpointed see the checkpoint retire() records
        logs = chain.w3.eth.get_logs({"address": chain.contract_address, "fromBlock": block, "toBlock": block})
        assert keccak256(b"Checkpointed(bytes24,uint64)") in [bytes(lg["topics"][0]) for lg in logs]
        reader = reader_of(chain)
        retirement = reader.retirement()
        assert not retirement.hostile and retirement.at_seq == head + 1
        assert warnings(reader) == []
        assert reader.batch_history()[1] == []
        assert verify_receipt(job.receipt(seqs[0]), reader) == []
        with pytest.raises(AnchorReverted) as info:
            send(admin, "retire")
        assert info.value.error_name == "AlreadyRetired"
        pay(c, 1)
        with pytest.raises(E.IntegrityViolation, match=f"retired by its admin after seq {head}"):
            job.run()
    finally:
        c.dispose()


def _anchored_community(db_url):
    """Two members, 7 entries anchored in batches of 3 with a checkpoint after the first 4."""
    c = Community(db_url)
    for n in ("ana", "bea"):
        c.member(n)
    pay(c, 4)
    chain = AnchorChain.embedded()
    admin_key = signing.new_key()
    chain.deploy(admin=address_of_key(admin_key))
    job = Anchoring(c.ledger, chain, max_batch=3)
    job.run()
    send(chain, "checkpoint")
    c.checkpoint_seq = chain.last_anchored_seq()
    pay(c, 3)
    job.run()
    return c, chain, chain.with_key(admin_key), job


def _forged_receipt(job, chain, first, last):
    """A receipt for entry 1 claiming it sits in the hostile batch first..last (the attacker's
    tree over entry 1, anchored at first..last: a valid Merkle proof to the hostile root)."""
    receipt = job.receipt(1)
    receipt = json.loads(json.dumps(receipt))
    receipt["batch"] = {**receipt["batch"], "firstSeq": first, "lastSeq": last}
    return receipt


@pytest.mark.parametrize("end", ["2**64-2", "2**62", "huge"])
def test_a_freeze_or_jump_below_2_64_1_is_named_as_a_hostile_batch(sqlite_url, end):
    """Review A-1: anchor(x, head+1, 2**64-2) (or any lastSeq no ledger reaches, or a batch over
    MAX_BATCH_SIZE entries) used to evade every check: now it is a hostile batch everywhere, and
    the admin's retire() after it is not reported as a clean retirement."""
    c, chain, admin, job = _anchored_community(sqlite_url)
    try:
        head = c.ledger.head()[0]
        last = {"2**64-2": UINT64_MAX - 1, "2**62": IMPLAUSIBLE_SEQ, "huge": head + 1 + MAX_BATCH_SIZE}[end]  # MAX_BATCH_SIZE + 1 entries
        assert chain.wait(chain.send_anchor(HOSTILE_ROOT, head + 1, last)).status == "confirmed"
        assert contract_view(chain, "retired") is False  # the contract cannot tell
        reader = reader_of(chain)
        pins = TrustRoot(contract=chain.contract_address, anchor_chain_id=chain.chain_id)
        named = f"hostile batch at seq {head + 1}..{last} by key {chain.sender}"
        for retired in (False, True):
            r = reader.retirement()
            assert r.hostile and (r.at_seq, r.last_seq, r.sender) == (head + 1, last, chain.sender), r
            assert r.admin_retired is retired
            notes = warnings(reader)
            assert len(notes) == 1 and named in notes[0], notes
            assert ("the admin then retired the contract" in notes[0]) is retired
            assert "stay verifiable" not in notes[0]  # review A-2: it vouched for the leaked key's batches
            assert [p for p in reader.batch_history()[1] if named in p]
            for seq in (1, head):  # honest receipts still prove their entries
                assert check(job.receipt(seq), reader, pins) == [], seq
            # review A-2: a receipt from after the last checkpoint, sent by the leaked key, is named
            # as such (the checkpoint retire() takes after the hostile batch vouches for nothing); one
            # checkpointed before is not
            assert warnings(reader, job.receipt(1)) == notes
            extra = warnings(reader, job.receipt(head))[1:]
            assert len(extra) == 1 and f"after the last checkpoint (seq {c.checkpoint_seq})" in extra[0], extra
            assert f"by the same key {chain.sender} that sent the hostile batch" in extra[0]
            assert not reader.is_anchored_on_chain(HOSTILE_ROOT, head + 1, last)
            problems = check(_forged_receipt(job, chain, head + 1, last), reader, pins)
            assert len(problems) == 1 and "is a hostile batch" in problems[0] and named in problems[0], problems
            pay(c, 1)
            with pytest.raises(E.IntegrityViolation) as info:  # not "entries 8..N are not all in the log"
                job.run()
            assert named in info.value.message and "not all in the log" not in info.value.message
            if not retired:
                send(admin, "retire")
    finally:
        c.dispose()


def test_a_plausible_batch_beyond_the_log_stops_the_anchorer_naming_it(sqlite_url):
    """A leaked key anchors a small batch past the log's head: the anchorer says so (with the
    sender), instead of blaming its own log."""
    c, chain, _, job = _anchored_community(sqlite_url)
    try:
        head = c.ledger.head()[0]
        chain.wait(chain.send_anchor(HOSTILE_ROOT, head + 1, head + 5))
        pay(c, 1)
        with pytest.raises(E.IntegrityViolation) as info:
            job.run()
        assert f"batch {head + 1}..{head + 5}" in info.value.message
        assert f"sent by {chain.sender}" in info.value.message and "beyond this log's head" in info.value.message
    finally:
        c.dispose()


def test_anchoring_in_a_retired_contract_says_it_is_retired():
    """Review A-4: NotContiguous(expectedFirstSeq=0, ...) (2**64-1 + 1 wraps) used to be all."""
    chain = AnchorChain.embedded()
    admin_key = signing.new_key()
    chain.deploy(admin=address_of_key(admin_key))
    chain.wait(chain.send_anchor(HOSTILE_ROOT, 1, 3))
    send(chain.with_key(admin_key), "retire")
    with pytest.raises(AnchorReverted) as info:
        chain.wait(chain.send_anchor(HOSTILE_ROOT, 4, 4))
    assert info.value.error_name == "NotContiguous" and "the contract is retired" in info.value.message


def test_the_anchorer_never_sends_a_batch_verifiers_call_hostile(sqlite_url):
    c = Community(sqlite_url)
    try:
        chain = AnchorChain.embedded()
        chain.deploy()
        with pytest.raises(E.InvalidInput, match="1 to 1,048,576"):
            Anchoring(c.ledger, chain, max_batch=MAX_BATCH_SIZE + 1)
        assert Anchoring(c.ledger, chain, max_batch=MAX_BATCH_SIZE).max_batch == MAX_BATCH_SIZE
    finally:
        c.dispose()


def test_watch_reports_an_error_code_once(sqlite_url):
    """Review A-4: "integrity_violation: integrity_violation: ..." in `ayni anchor --watch`."""
    import threading

    from ledger.anchoring import watch
    c, _, admin, job = _anchored_community(sqlite_url)
    try:
        send(admin, "retire")
        pay(c, 1)
        stop, errors = threading.Event(), []

        def on_error(message):
            errors.append(message)
            stop.set()
        watch(job, interval=0.01, min_entries=1, stop=stop, on_report=lambda r: None, on_error=on_error)
        assert errors[0].startswith("integrity_violation: the anchor contract"), errors
    finally:
        c.dispose()


def test_deploy_needs_an_admin_other_than_the_anchoring_key():
    chain = AnchorChain.embedded()
    with pytest.raises(AdminIsAnchorer, match="anchoring key itself") as info:
        chain.deploy(admin=chain.sender)
    assert info.value.code == "admin_is_anchorer"
    # embedded default: another tester account, never the anchoring key
    chain.deploy()
    admin_role = contract_view(chain, "DEFAULT_ADMIN_ROLE")
    assert contract_view(chain, "hasRole", admin_role, chain.sender) is False
    assert contract_view(chain, "ANCHORER") == chain.sender
    # explicit opt-out for throwaway chains
    single = chain.with_key(signing.new_key())
    single.deploy(single_key_for_testing=True)
    assert contract_view(single, "hasRole", admin_role, single.sender) is True
    # review B-1: the wallet warns when the anchoring key is the admin too, and only then
    assert warnings(reader_of(chain)) == []
    (note,) = warnings(reader_of(single))
    assert "anchoring key is also its admin" in note


# ------------------------------------------------------------------ a Hardhat node, through the commands

def run(cmd, *args):
    return subprocess.run([str(BIN / cmd), *map(str, args)], capture_output=True, text=True, timeout=120,
                          env={k: v for k, v in os.environ.items() if not k.startswith("AYNI_")})


def test_deploy_without_admin_is_refused_before_anything_is_sent(tmp_path):
    r = run("ayni", "chain", "deploy", "--chain", "http://127.0.0.1:9", "--keystore", tmp_path / "none.json")
    assert r.returncode == 1 and "--admin" in r.stderr and "--single-key-for-testing" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
    # review B-2: an empty --admin is no address (it used to be read as "no admin given" and refused
    # as admin_is_anchorer)
    r = run("ayni", "chain", "deploy", "--chain", "http://127.0.0.1:9", "--keystore", tmp_path / "none.json",
            "--admin", "")
    assert r.returncode == 1 and "is not a 0x-prefixed 20-byte hex address" in r.stderr, r.stderr
    assert "anchoring key" not in r.stderr and "Traceback" not in r.stderr


@pytest.fixture(scope="module")
def node():
    with hardhat_node() as url:
        yield url


def test_hostile_retirement_over_json_rpc_with_the_commands(node, tmp_path):
    url = f"sqlite:///{tmp_path / 'coop.db'}"
    treasurer = signing.new_key()
    assert run("ayni", "init", "--db", url, "--treasurer", address_of_key(treasurer)).returncode == 0
    ledger = Ledger.open(url, migrate=False)
    try:
        domain = ledger.genesis.domain
        keys = [signing.new_key() for _ in range(2)]
        for k in keys:
            ledger.submit(signing.open_account(treasurer, domain, account=address_of_key(k)))
        for i in range(8):
            ledger.submit(signing.transfer(keys[i % 2], domain, payee=address_of_key(keys[(i + 1) % 2]),
                                           currency="HOUR", amount=10 + i))
        keystore, password = tmp_path / "anchor.json", tmp_path / "pass.txt"
        password.write_text("pw\n")
        write_keystore(str(keystore), HARDHAT_KEYS[0], "pw")
        key_args = ["--chain", node, "--keystore", keystore, "--password-file", password]
        anchorer, admin = address_of_key(HARDHAT_KEYS[0]), address_of_key(HARDHAT_KEYS[1])

        r = run("ayni", "chain", "deploy", *key_args)
        assert r.returncode == 1 and "needs --admin" in r.stderr, r.stderr
        r = run("ayni", "chain", "deploy", *key_args, "--admin", anchorer.lower())
        assert r.returncode == 1 and "is the anchoring key itself" in r.stderr, r.stderr
        r = run("ayni", "chain", "deploy", *key_args, "--single-key-for-testing")
        assert r.returncode == 0 and "testing only" in r.stdout, r.stderr
        r = run("ayni", "chain", "deploy", *key_args, "--admin", admin)
        assert r.returncode == 0 and f"admin {admin}" in r.stdout, r.stderr
        contract = re.search(r"deployed at (0x[0-9a-fA-F]{40})", r.stdout).group(1)

        r = run("ayni", "anchor", "--db", url, "--contract", contract, "--max-batch", "4", *key_args)
        assert r.returncode == 0, r.stderr
        head = ledger.head()[0]
        receipts = {}
        for seq in (3, head):
            receipts[seq] = tmp_path / f"receipt-{seq}.json"
            r = run("ayni", "receipt", seq, "--db", url, "--contract", contract, "--out", receipts[seq])
            assert r.returncode == 0, r.stderr

        # the anchoring key leaks; the attacker retires the contract with it
        leaked = AnchorChain.connect(node, private_key=HARDHAT_KEYS[0], contract_address=contract)
        assert leaked.wait(leaked.send_anchor(HOSTILE_ROOT, head + 1, UINT64_MAX)).status == "confirmed"

        pins = ["--contract", contract, "--chain-id", HARDHAT_CHAIN_ID]
        warning = f"WARNING: anchor history holds a hostile batch at seq {head + 1}..{UINT64_MAX} by key {anchorer}"
        for seq, receipt in receipts.items():
            r = run("ayni-wallet", "verify", receipt, "--chain", node, *pins)
            assert r.returncode == 0 and r.stdout.startswith(f"OK: entry {seq}"), r.stdout + r.stderr
            assert warning in r.stderr, r.stderr
            r = run("ayni-wallet", "verify", receipt, "--chain", node, *pins, "--json")
            out = json.loads(r.stdout)
            assert r.returncode == 0 and out["ok"] is True
            assert out["warnings"][0].startswith(warning.removeprefix("WARNING: "))

        admin_chain = leaked.with_key(HARDHAT_KEYS[1])
        with pytest.raises(AnchorReverted) as info:
            send(admin_chain, "retire")
        assert info.value.error_name == "AlreadyRetired"

        ledger.submit(signing.transfer(keys[0], domain, payee=address_of_key(keys[1]), currency="HOUR", amount=1))
        r = run("ayni", "anchor", "--db", url, "--contract", contract, *key_args)
        assert r.returncode != 0 and f"hostile batch at seq {head + 1}" in r.stderr, r.stdout + r.stderr
        assert "integrity_violation: integrity_violation" not in r.stderr, r.stderr
        assert "Traceback" not in r.stderr
    finally:
        ledger.engine.dispose()
