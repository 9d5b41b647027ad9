import pytest

from ledger.core.entries import Entry, canonical_bytes, verify_chain
from ledger.core.errors import InvalidInput
from ledger.core.hashing import ZERO32, keccak256


def _log(n=4):
    prev, out = ZERO32, []
    for seq in range(1, n + 1):
        e = Entry.make(seq, "transfer.posted", 1000 + seq, {"amount": seq, "payer": "0xabc", "memoHash": "0x00"}, prev)
        out.append(e)
        prev = e.chain_hash
    return out


def test_canonical_encoding_is_sorted_compact_ascii():
    assert canonical_bytes(3, "limit.set", 7, {"b": "ñ", "a": [1, None, True]}) == \
        b'{"at":7,"body":{"a":[1,null,true],"b":"\\u00f1"},"kind":"limit.set","seq":3}'


@pytest.mark.parametrize("bad", [1.5, 2**53, {1: "x"}, b"bytes"])
def test_values_without_a_portable_encoding_are_refused(bad):
    with pytest.raises(InvalidInput):
        canonical_bytes(1, "limit.set", 0, {"v": bad})


def test_chain_hash_links_each_entry_to_the_previous():
    log = _log()
    assert log[0].chain_hash == keccak256(ZERO32 + log[0].entry_hash)
    assert log[2].chain_hash == keccak256(log[1].chain_hash + log[2].entry_hash)
    assert verify_chain(log) == []


def test_edited_entry_is_located():
    log = _log()
    e = log[1]
    log[1] = Entry(e.seq, e.kind, e.at, {**e.body, "amount": 999}, e.entry_hash, e.chain_hash)
    faults = verify_chain(log)
    assert [f.seq for f in faults] == [2] and "entry hash" in faults[0].problem


def test_deleted_and_reordered_entries_are_located():
    log = _log(5)
    faults = verify_chain(log[:2] + log[3:])
    assert faults[0].seq == 4 and "gap" in faults[0].problem
    faults = verify_chain([log[0], log[2], log[1]] + log[3:])
    assert {f.seq for f in faults} >= {3, 2}


def test_rewritten_history_with_rehashed_entry_breaks_the_next_link():
    log = _log()
    forged = Entry.make(2, "transfer.posted", 1002, {"amount": 999, "payer": "0xabc", "memoHash": "0x00"},
                        log[0].chain_hash)
    faults = verify_chain([log[0], forged, log[2], log[3]])
    assert [f.seq for f in faults] == [3] and "chain hash" in faults[0].problem


from hypothesis import given, strategies as st  # noqa: E402

from ledger.core.entries import canonical_body  # noqa: E402

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=10)


@given(st.integers(1, 2**40), st.sampled_from(["transfer.posted", "limit.set"]), st.integers(0, 2**45),
       st.dictionaries(st.text(max_size=6), json_values, max_size=5))
def test_fast_path_hash_equals_the_canonical_document_hash(seq, kind, at, body):
    slow = Entry.make(seq, kind, at, body, ZERO32)
    fast = Entry.from_body_text(seq, kind, at, body, canonical_body(body), ZERO32)
    assert fast == slow
