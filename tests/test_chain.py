"""ledger/chain: the Anchor adapter on the embedded eth-tester chain and on a real Hardhat node.

Real components only: py-evm in-process, `npx hardhat node` on 127.0.0.1 (tests/hardhat_node.py),
V3 keystores with real scrypt.
"""
from __future__ import annotations

import json
import os
import random
import socket
import stat
import threading
import time

import pytest
from eth_account import Account

from tests.hardhat_node import HARDHAT_CHAIN_ID, HARDHAT_KEYS, free_port, group_alive, hardhat_node
from ledger.chain import (
    AdminIsAnchorer,
    AnchorChain,
    AnchoredEvent,
    AnchorReverted,
    BadKeystore,
    ChainError,
    ChainUnavailable,
    InsufficientFunds,
    WrongContract,
    accumulate,
    genesis,
)
from ledger.chain.keys import load_keystore, write_keystore
from ledger.chain.web3_anchor import ARTIFACT, load_artifact
from ledger.core.merkle import build_entry_tree
from ledger.verify.anchor_reader import READER_ABI, AnchorReader
from tests.chain_helpers import contract_view, mine, transcript

GAS_TARGET = 31_500
HARDHAT_ADMIN = Account.from_key(HARDHAT_KEYS[1]).address  # the contract's admin: another key than the anchorer
FAST_SCRYPT_N = 2**12  # tests only; write_keystore defaults to the standard 2**18


def rand_root(rng: random.Random) -> bytes:
    return bytes(rng.randrange(1, 256) for _ in range(32))


def anchor_batches(chain: AnchorChain, batches, *, min_confirmations: int = 1):
    statuses = []
    for root, first, last in batches:
        tx = chain.send_anchor(root, first, last)
        assert tx.startswith("0x") and len(tx) == 66
        st = chain.wait(tx, min_confirmations=min_confirmations, timeout=30)
        assert st.status == "confirmed", st
        statuses.append(st)
    return statuses


def replay_head(chain: AnchorChain, batches) -> bytes:
    acc = genesis(chain.chain_id, chain.contract_address)
    for root, first, last in batches:
        acc = accumulate(acc, root, first, last)
    return acc


def check_three_batches(chain: AnchorChain, reader: AnchorChain, rng: random.Random, label: str):
    """Anchor 3 contiguous batches with `chain`, read everything back with `reader`."""
    batches = [(rand_root(rng), 1, 10), (rand_root(rng), 11, 500), (rand_root(rng), 501, 100_000)]
    statuses = anchor_batches(chain, batches)
    for st in statuses:
        assert st.gas_used < GAS_TARGET, st
        assert st.effective_gas_price and st.effective_gas_price > 0
        assert st.block is not None and st.confirmations >= 1
    print(f"\n  [{label}] anchor gasUsed: {[st.gas_used for st in statuses]}")

    events = reader.anchored_events()
    assert [(e.root, e.first_seq, e.last_seq) for e in events] == batches
    assert [e.tx_hash for e in events] == [st.tx_hash for st in statuses]
    assert [e.block for e in events] == [st.block for st in statuses]
    assert all(isinstance(e, AnchoredEvent) and len(e.accumulator) == 24 for e in events)
    # emitted accumulators are the Python replay
    acc = contract_view(reader, "GENESIS")
    assert acc == genesis(reader.chain_id, reader.contract_address)
    for e in events:
        acc = accumulate(acc, e.root, e.first_seq, e.last_seq)
        assert e.accumulator == acc

    assert reader.find_batch(11) == events[1]
    assert reader.find_batch(501) == events[2]
    assert reader.find_batch(12) is None and reader.find_batch(100_001) is None
    assert reader.head() == (replay_head(reader, batches), 100_000)
    assert reader.last_anchored_seq() == 100_000
    for root, first, last in batches:
        assert reader.is_anchored_on_chain(root, first, last)
    root, first, last = batches[1]
    assert not reader.is_anchored_on_chain(rand_root(rng), first, last)  # wrong root
    assert not reader.is_anchored_on_chain(root, first, last + 1)  # wrong range
    assert not reader.is_anchored_on_chain(root, first + 1, last)
    assert not reader.is_anchored_on_chain(batches[0][0], first, last)  # another batch's root
    # the verifier's own reader (no writer code, its own ABI entries) reads the same history
    independent = AnchorReader(reader.w3)
    independent.use_contract(reader.contract_address.lower())
    assert independent.anchored_events() == events and independent.head() == reader.head()
    assert independent.batch_history() == (events, [])
    assert all(independent.is_anchored_on_chain(*b) for b in batches)
    assert not independent.is_anchored_on_chain(rand_root(rng), first, last)
    return batches, statuses


def assert_refused(chain: AnchorChain, root: bytes, first: int, last: int, error_name: str) -> AnchorReverted:
    """The anchor is refused before anything is sent: same head, same block height."""
    before = (chain.head(), chain.block_number())
    with pytest.raises(AnchorReverted) as info:
        chain.send_anchor(root, first, last)
    exc = info.value
    assert exc.code == "anchor_reverted" and exc.error_name == error_name, exc
    assert error_name in exc.message
    assert (chain.head(), chain.block_number()) == before
    return exc


# --------------------------------------------------------------------------- pure accumulator


def test_python_accumulator_equals_contract_accumulate():
    chain = AnchorChain.embedded()
    chain.deploy()
    rng = random.Random(7)
    acc = contract_view(chain, "GENESIS")
    assert acc == genesis(chain.chain_id, chain.contract_address)
    for first, last in [(1, 1), (2, 10**6), (2**63, 2**64 - 1), (0, 0)]:
        root = rand_root(rng)
        ours = accumulate(acc, root, first, last)
        assert ours == contract_view(chain, "accumulate", acc, root, first, last)
        acc = ours
    with pytest.raises(ValueError):
        accumulate(acc, b"\x01" * 31, 1, 1)


# --------------------------------------------------------------------------- embedded chain


@pytest.fixture()
def embedded():
    chain = AnchorChain.embedded()
    admin = chain._tester.get_accounts()[1]  # a distinct admin: must appear only in the deploy tx
    address, gas = chain.deploy(admin=admin)
    chain.admin = admin
    chain.deploy_gas = gas
    assert address == chain.contract_address
    return chain


def test_reader_abi_is_the_contracts():
    """The verifier carries its own ABI entries (it does not read the server's build): each is
    the compiled contract's entry, same name, input and output types."""
    def shape(item):
        def types(params):
            return [(p["type"], types(p.get("components", []))) for p in params]
        return item["type"], item["name"], types(item.get("inputs", [])), types(item.get("outputs", [])), \
            [p.get("indexed") for p in item.get("inputs", [])]
    compiled = {(e["type"], e.get("name")): shape(e) for e in load_artifact()["abi"] if "name" in e}
    for entry in READER_ABI:
        assert shape(entry) == compiled[(entry["type"], entry["name"])], entry["name"]


def test_embedded_anchor_read_back_and_refusals(embedded):
    chain = embedded
    print(f"\n  [eth-tester] Anchor deploy gasUsed: {chain.deploy_gas}")
    assert 1_000_000 < chain.deploy_gas < 1_300_000
    assert chain.last_anchored_seq() == 0
    assert chain.head() == (contract_view(chain, "GENESIS"), 0)
    assert chain.anchored_events() == []

    reader = chain.with_key(None)  # read-only view of the same chain and contract
    assert reader.sender is None
    rng = random.Random(11)
    batches, _ = check_three_batches(chain, reader, rng, "eth-tester")

    exc = assert_refused(chain, rand_root(rng), 100_002, 100_010, "NotContiguous")  # gap
    assert exc.error_args == {"expectedFirstSeq": 100_001, "firstSeq": 100_002, "lastSeq": 100_010}
    assert_refused(chain, rand_root(rng), 501, 100_000, "NotContiguous")  # replay
    assert_refused(chain, rand_root(rng), 100_001, 100_000, "NotContiguous")  # empty
    assert_refused(chain, b"\x00" * 32, 100_001, 100_002, "ZeroRoot")

    stranger = chain.with_key(Account.create().key)  # funded, but not the anchorer
    assert stranger.sender != chain.sender and not contract_view(stranger, "isAnchorer", stranger.sender)
    exc = assert_refused(stranger, rand_root(rng), 100_001, 100_002, "AccessControlUnauthorizedAccount")
    assert exc.error_args["account"].lower() == stranger.sender.lower()

    with pytest.raises(ChainError, match="read-only"):
        reader.send_anchor(rand_root(rng), 100_001, 100_002)
    assert chain.last_anchored_seq() == 100_000 and len(chain.anchored_events()) == 3


def test_embedded_with_own_key_is_funded_and_deploys():
    key = Account.create().key
    chain = AnchorChain.embedded(private_key=key)
    assert chain.sender == Account.from_key(key).address
    _, gas = chain.deploy()
    tx = chain.send_anchor(b"\x42" * 32, 1, 1)
    st = chain.tx_status(tx)
    assert st.status == "confirmed" and st.gas_used < GAS_TARGET
    assert chain.is_anchored_on_chain(b"\x42" * 32, 1, 1)


def test_tx_status_pending_confirmations_failed_unknown(embedded):
    chain = embedded
    tester = chain._tester
    tester.disable_auto_mine_transactions()
    try:
        tx = chain.send_anchor(b"\x01" * 32, 1, 4)
        st = chain.tx_status(tx)
        assert (st.status, st.block, st.confirmations, st.gas_used) == ("pending", None, 0, None)
        mine(chain, 1)
    finally:
        tester.enable_auto_mine_transactions()
    st = chain.tx_status(tx)
    assert st.status == "confirmed" and st.block is not None and st.gas_used < GAS_TARGET
    assert st.confirmations == chain.block_number() - st.block + 1
    deep = st.confirmations + 2
    st = chain.tx_status(tx, min_confirmations=deep)
    assert (st.status, st.confirmations) == ("pending", deep - 2) and st.block is not None  # mined, not deep enough
    assert chain.wait(tx, min_confirmations=deep, timeout=0.2).status == "pending"  # timeout: last status
    mine(chain, 2)
    st = chain.tx_status(tx, min_confirmations=deep)
    assert (st.status, st.confirmations) == ("confirmed", deep)

    # a reverting tx that bypasses the estimate (explicit gas) is mined with status 0
    account, contract = Account.from_key(chain._account.key), chain._contract
    raw = account.sign_transaction({
        "to": contract.address, "data": contract.encode_abi("anchor", args=[b"\x02" * 32, 9, 9]),
        "gas": 100_000, "maxFeePerGas": 10**10, "maxPriorityFeePerGas": 10**9, "value": 0,
        "nonce": chain.w3.eth.get_transaction_count(account.address), "chainId": chain.chain_id,
    }).raw_transaction
    bad = chain.w3.eth.send_raw_transaction(raw)
    st = chain.wait("0x" + bytes(bad).hex())
    assert st.status == "failed" and st.block is not None and st.gas_used > 21_000

    st = chain.tx_status("0x" + "ab" * 32)
    assert (st.status, st.block, st.confirmations) == ("unknown", None, 0)


def test_transcript_holds_roots_and_no_member_data(embedded, sqlite_url):
    """Anchor batches of a real ledger (members with names, transfers with memos): the chain
    holds the roots, and no member address, name or memo, in any encoding."""
    from tests.conftest import Community

    chain = embedded
    c = Community(sqlite_url)
    try:
        names = {"alice": "Alice Quispe Mamani", "bob": "Bob Condori", "carla": "Carla Huanca"}
        for name, display in names.items():
            c.member(name)
            c.ledger.set_profile(c.addr(name), display_name=display)
        memos = ["rent for the loom, March", "two hours of childcare", "tomato seedlings"]
        for (payer, payee), memo in zip([("alice", "bob"), ("bob", "carla"), ("carla", "alice")], memos, strict=True):
            c.ledger.submit(c.pay(payer, payee, 150, memo=memo))
        entries = list(c.ledger.iter_entries())
        assert len(entries) >= 7
        members = [c.addr(n) for n in names] + [c.treasurer]
    finally:
        c.dispose()

    roots, last = [], 0
    for chunk in (entries[:3], entries[3:5], entries[5:]):
        assert chunk[0].seq == last + 1
        root = build_entry_tree([(e.seq, e.entry_hash) for e in chunk]).root
        anchor_batches(chain, [(root, chunk[0].seq, chunk[-1].seq)])
        roots.append(root)
        last = chunk[-1].seq
    for root, chunk in zip(roots, (entries[:3], entries[3:5], entries[5:]), strict=True):
        assert chain.is_anchored_on_chain(root, chunk[0].seq, chunk[-1].seq)

    held = transcript(chain)
    blob = b"".join(held)
    for root in roots:
        assert root in blob
    allowed = {bytes.fromhex(a[2:]) for a in (chain.contract_address, chain.sender, chain.admin)}
    tester_accounts = [bytes.fromhex(a[2:]) for a in chain._tester.get_accounts()]
    forbidden_addrs = [bytes.fromhex(a[2:]) for a in members] + [a for a in tester_accounts if a not in allowed]
    texts = list(names) + list(names.values()) + memos
    for addr in forbidden_addrs:
        for form in (addr, addr.hex().encode(), addr.hex().upper().encode()):
            assert form not in blob
    for text in texts:
        for form in (text.encode(), text.encode().hex().encode(), text.lower().encode()):
            assert form not in blob
    for e in entries:  # not even the entry hashes: only Merkle roots go on chain
        assert e.entry_hash not in blob

    # Beyond the deploy tx (bytecode + constructor(admin, anchorer)), every address-shaped ABI
    # word in calls and logs is one of contract / sender / admin.
    deploy_input = held[0]
    assert deploy_input[-64:] == bytes(12) + bytes.fromhex(chain.admin[2:]) + bytes(12) + bytes.fromhex(chain.sender[2:])
    for item in held[1:]:
        body = item[4:] if len(item) % 32 == 4 else item  # skip a function selector
        for i in range(0, len(body) - 31, 32):
            word = body[i : i + 32]
            if word[:12] == bytes(12) and int.from_bytes(word, "big") >= 2**64:
                assert word[12:] in allowed, word.hex()


def test_use_contract_rejects_wrong_addresses(embedded):
    chain = embedded
    other = chain.with_key(None)
    with pytest.raises(WrongContract, match="no contract code"):
        other.use_contract(chain.sender)
    with pytest.raises(WrongContract):
        other.use_contract("0x1234")
    # a contract that is not an Anchor
    harness = load_artifact(ARTIFACT.parent / "MerkleProofHarness.json")
    factory = chain.w3.eth.contract(abi=harness["abi"], bytecode=harness["bytecode"])
    receipt = chain.w3.eth.wait_for_transaction_receipt(factory.constructor().transact({"from": chain.admin}))
    with pytest.raises(WrongContract, match="not an Anchor"):
        other.use_contract(receipt["contractAddress"])
    with pytest.raises(ChainError, match="no Anchor contract selected"):
        AnchorChain.embedded().head()
    other.use_contract(chain.contract_address.lower())
    assert other.contract_address == chain.contract_address


# --------------------------------------------------------------------------- keystore


def test_keystore_round_trip_and_faults(tmp_path):
    key = Account.create().key
    path = tmp_path / "anchor.json"
    write_keystore(str(path), key, "correct horse", scrypt_n=FAST_SCRYPT_N)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    data = json.loads(path.read_text())
    assert data["version"] == 3 and data["crypto"]["kdf"] == "scrypt"
    assert data["address"].lower() == Account.from_key(key).address[2:].lower()
    assert load_keystore(str(path), "correct horse") == bytes(key)

    with pytest.raises(BadKeystore, match="wrong passphrase") as info:
        load_keystore(str(path), "wrong horse")
    assert info.value.code == "bad_keystore"
    garbage = tmp_path / "garbage.json"
    garbage.write_bytes(b"\x00\xffnot json at all")
    with pytest.raises(BadKeystore, match="not JSON|cannot read"):
        load_keystore(str(garbage), "x")
    wrong_shape = tmp_path / "shape.json"
    wrong_shape.write_text('{"version": 3, "crypto": {"cipher": "aes-128-ctr"}}')
    with pytest.raises(BadKeystore, match="malformed"):
        load_keystore(str(wrong_shape), "x")
    with pytest.raises(BadKeystore, match="not an Ethereum V3 keystore"):
        load_keystore(_write(tmp_path / "list.json", "[1, 2]"), "x")
    with pytest.raises(BadKeystore, match="not found"):
        load_keystore(str(tmp_path / "missing.json"), "x")


def test_keystore_standard_scrypt_parameters(tmp_path):
    """The default is geth's standard scrypt (n=2**18): other wallets open it as is."""
    key = Account.create().key
    path = tmp_path / "std.json"
    write_keystore(str(path), key, "pw")
    kdf = json.loads(path.read_text())["crypto"]["kdfparams"]
    assert (kdf["n"], kdf["r"], kdf["p"], kdf["dklen"]) == (2**18, 8, 1, 32)
    assert bytes(Account.decrypt(json.loads(path.read_text()), "pw")) == bytes(key)


def _write(path, text: str) -> str:
    path.write_text(text)
    return str(path)


# --------------------------------------------------------------------------- unreachable nodes


def test_closed_port_is_chain_unavailable_quickly():
    url = f"http://127.0.0.1:{free_port()}"
    t0 = time.monotonic()
    with pytest.raises(ChainUnavailable) as info:
        AnchorChain.connect(url, private_key=HARDHAT_KEYS[0])
    assert time.monotonic() - t0 < 2.0
    assert info.value.code == "chain_unavailable" and "127.0.0.1" in info.value.message


def test_silent_node_times_out_as_chain_unavailable():
    """A socket that accepts connections and never answers: the timeout becomes ChainUnavailable."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    conns = []
    stop = threading.Event()

    def accept():
        srv.settimeout(0.1)
        while not stop.is_set():
            try:
                conns.append(srv.accept()[0])
            except OSError:
                pass

    th = threading.Thread(target=accept, daemon=True)
    th.start()
    try:
        t0 = time.monotonic()
        with pytest.raises(ChainUnavailable):
            AnchorChain.connect(f"http://127.0.0.1:{srv.getsockname()[1]}", timeout=0.5)
        assert time.monotonic() - t0 < 3.0
    finally:
        stop.set()
        th.join()
        for c in conns:
            c.close()
        srv.close()


# --------------------------------------------------------------------------- Hardhat node (real JSON-RPC)


@pytest.fixture(scope="module")
def hardhat_url():
    with hardhat_node() as url:
        yield url


def test_hardhat_anchor_and_independent_verifier(hardhat_url):
    chain = AnchorChain.connect(hardhat_url, private_key=HARDHAT_KEYS[0], expected_chain_id=HARDHAT_CHAIN_ID)
    assert chain.chain_id == HARDHAT_CHAIN_ID
    assert chain.sender == "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
    with pytest.raises(AdminIsAnchorer, match="another key"):  # on a node the admin must be given
        chain.deploy()
    with pytest.raises(AdminIsAnchorer, match="anchoring key itself"):
        chain.deploy(admin=chain.sender)
    address, gas = chain.deploy(admin=HARDHAT_ADMIN)
    print(f"\n  [hardhat] Anchor deploy gasUsed: {gas}")
    assert 1_000_000 < gas < 1_300_000

    verifier = AnchorChain.connect(hardhat_url, contract_address=address)  # read-only, separate
    assert verifier.sender is None and verifier.contract_address == address
    rng = random.Random(13)
    batches, statuses = check_three_batches(chain, verifier, rng, "hardhat")

    assert_refused(chain, rand_root(rng), 7, 9, "NotContiguous")  # web3 ContractLogicError path
    assert_refused(chain, b"\x00" * 32, 100_001, 100_001, "ZeroRoot")
    stranger = chain.with_key(HARDHAT_KEYS[1])
    assert_refused(stranger, rand_root(rng), 100_001, 100_002, "AccessControlUnauthorizedAccount")
    with pytest.raises(ChainError, match="read-only"):
        verifier.send_anchor(rand_root(rng), 100_001, 100_002)

    with pytest.raises(WrongContract, match="no contract code"):
        verifier.use_contract(chain.sender)  # an account, no code
    with pytest.raises(WrongContract, match="no contract code"):
        AnchorChain.connect(hardhat_url, contract_address="0x" + "12" * 20)
    with pytest.raises(WrongContract, match="chain id"):
        AnchorChain.connect(hardhat_url, contract_address=address, expected_chain_id=1)

    # pending and confirmations on a real node: automine off, mine by hand. The second anchor
    # is sent while the first is still in the mempool (estimate on the pending state, nonce
    # from the pending count): batches can be pipelined.
    chain.w3.provider.make_request("evm_setAutomine", [False])
    try:
        tx1 = chain.send_anchor(rand_root(rng), 100_001, 100_100)
        tx2 = chain.send_anchor(rand_root(rng), 100_101, 100_200)
        for tx in (tx1, tx2):
            st = verifier.tx_status(tx)
            assert (st.status, st.block, st.confirmations) == ("pending", None, 0)
        assert verifier.last_anchored_seq() == 100_000
        mine(chain, 1)
        st = verifier.tx_status(tx2, min_confirmations=2)
        assert (st.status, st.confirmations) == ("pending", 1) and st.gas_used < GAS_TARGET
        mine(chain, 1)
        assert verifier.wait(tx2, min_confirmations=2, timeout=5).status == "confirmed"
        assert verifier.tx_status(tx1).block == verifier.tx_status(tx2).block
    finally:
        chain.w3.provider.make_request("evm_setAutomine", [True])
    assert verifier.last_anchored_seq() == 100_200
    assert verifier.tx_status("0x" + "cd" * 32).status == "unknown"

    # an anchoring key without ETH: InsufficientFunds (a ChainError), nothing sent
    balance = chain.w3.eth.get_balance(chain.sender)
    chain.w3.provider.make_request("hardhat_setBalance", [chain.sender, hex(10**9)])
    try:
        with pytest.raises(InsufficientFunds) as info:
            chain.send_anchor(rand_root(rng), 100_201, 100_300)
        assert info.value.code == "insufficient_funds" and chain.sender in info.value.message
    finally:
        chain.w3.provider.make_request("hardhat_setBalance", [chain.sender, hex(balance)])
    assert verifier.last_anchored_seq() == 100_200

    # the log scan is chunked: tiny chunks give the same answer
    verifier.log_chunk_blocks = 2
    assert [(e.root, e.first_seq, e.last_seq) for e in verifier.anchored_events()][:3] == batches
    assert verifier.is_anchored_on_chain(*batches[0])


def test_hardhat_node_gone_is_chain_unavailable():
    """Kill the node: every call of the adapter raises ChainUnavailable, nothing else."""
    with hardhat_node() as url:
        chain = AnchorChain.connect(url, private_key=HARDHAT_KEYS[0])
        chain.deploy(admin=HARDHAT_ADMIN)
        tx = chain.send_anchor(b"\x07" * 32, 1, 3)
        assert chain.wait(tx).status == "confirmed"
        reader = AnchorChain.connect(url, contract_address=chain.contract_address)
    assert not group_alive(url.pgid)  # the context manager killed the whole process group
    calls = {
        "send_anchor": lambda: chain.send_anchor(b"\x08" * 32, 4, 5),
        "tx_status": lambda: chain.tx_status(tx),
        "wait": lambda: chain.wait(tx, timeout=1),
        "block_number": chain.block_number,
        "head": reader.head,
        "last_anchored_seq": reader.last_anchored_seq,
        "anchored_events": reader.anchored_events,
        "find_batch": lambda: reader.find_batch(1),
        "is_anchored_on_chain": lambda: reader.is_anchored_on_chain(b"\x07" * 32, 1, 3),
        "use_contract": lambda: reader.use_contract(chain.contract_address),
        "deploy": lambda: chain.deploy(admin=HARDHAT_ADMIN),
        "batch_history": reader.batch_history,
    }
    for name, call in calls.items():
        t0 = time.monotonic()
        with pytest.raises(ChainUnavailable) as info:
            call()
        assert type(info.value) is ChainUnavailable, name
        assert time.monotonic() - t0 < 3.0, name
