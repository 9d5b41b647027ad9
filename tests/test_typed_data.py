"""EIP-712: the EIP's own vector, Ayni's Transfer vector, and cross-checks with eth-account."""
import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from hypothesis import given, settings, strategies as st

from ledger.core import eip712
from ledger.core.errors import BadSignature, InvalidAddress, InvalidInput
from ledger.core.hashing import keccak256
from ledger.core.typed_data import (Domain, OpenAccount, SetLimit, SetStatus, Transfer, address_of_key,
                                    full_message, memo_hash, recover_signer, sign_action)

ETHER_MAIL = {
    "types": {
        "EIP712Domain": [{"name": "name", "type": "string"}, {"name": "version", "type": "string"},
                         {"name": "chainId", "type": "uint256"}, {"name": "verifyingContract", "type": "address"}],
        "Person": [{"name": "name", "type": "string"}, {"name": "wallet", "type": "address"}],
        "Mail": [{"name": "from", "type": "Person"}, {"name": "to", "type": "Person"},
                 {"name": "contents", "type": "string"}],
    },
    "primaryType": "Mail",
    "domain": {"name": "Ether Mail", "version": "1", "chainId": 1,
               "verifyingContract": "0xCcCCccccCCCCcCCCCCCcCcCccCcCCCcCcccccccC"},
    "message": {"from": {"name": "Cow", "wallet": "0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826"},
                "to": {"name": "Bob", "wallet": "0xbBbBBBBbbBBBbbbBbbBbbbbBBbBbbbbBbBbbBBbB"},
                "contents": "Hello, Bob!"},
}


def test_ether_mail_vector_from_the_eip():
    types = ETHER_MAIL["types"]
    assert eip712.encode_type(types, "Mail") == \
        "Mail(Person from,Person to,string contents)Person(string name,address wallet)"
    assert eip712.hash_struct(types, "EIP712Domain", ETHER_MAIL["domain"]).hex() == \
        "f2cee375fa42b42143804025fc449deafd50cc031ca257e0b194a650a912090f"
    assert eip712.hash_struct(types, "Mail", ETHER_MAIL["message"]).hex() == \
        "c52c0ee5d84264471806290a3f2c4cecfc5490626bf912d01f240d7a274b371e"
    digest = eip712.digest(ETHER_MAIL)
    assert digest.hex() == "be609aee343fb3c4b28e1df9e632fca64fcfaede20f02e86244efddf30957bd2"
    cow = keccak256(b"cow")
    assert address_of_key(cow) == "0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826"
    signed = Account.sign_typed_data(cow, full_message=ETHER_MAIL)
    assert signed.v == 28
    assert recover_signer(digest, signed.signature) == address_of_key(cow)


# Ayni's own vector, published in docs/typed-data.md. Changing any of these values is a
# breaking change of the signed format: every wallet would have to change with it.
PAYER_KEY = keccak256(b"ayni payer")
PAYEE = address_of_key(keccak256(b"ayni payee"))
DOMAIN = Domain(chain_id=31337, salt=keccak256(b"ayni test community"))
VECTOR = Transfer.create(payer=address_of_key(PAYER_KEY), payee=PAYEE, currency="HOUR", amount=90, nonce=1,
                         valid_until=1893456000, memo_hash=memo_hash("home visit", b"\x11" * 32))


def test_ayni_transfer_vector():
    assert VECTOR.payer == "0x0c6C78f7274A93b337Fe4177034D8aDCe9Dd1807"
    assert PAYEE == "0xF2b142AC2987e5a86AfFC2b952628FcdC3d0AbfA"
    assert VECTOR.memo_hash.hex() == "40fd4a038facefe55d1528284dea3d51fcc23c1af0865eea3a26e18d9883b55a"
    assert DOMAIN.separator.hex() == "08429d71279af0be6aa0e2d978d36f4c6f54d0594affc458847018d56707e491"
    assert VECTOR.struct_hash().hex() == "9222fa545781f8a462bee9009c49172ce2479ddd42c7bf34f025aac7a058e8ff"
    digest = DOMAIN.digest(VECTOR.struct_hash())
    assert digest.hex() == "ab768ad8108d380994d730eaaa578cba0135a411ba907b83d7dc1e3abc2476a7"
    sig = sign_action(PAYER_KEY, DOMAIN, VECTOR)
    assert sig == ("0x54f94c32d6916d06a3a1d669c3cb41d78d2917fd3e2d55e87becedbc6d027268"
                   "471d2d07080d35bb362e07c3d8a0506041d6e09b0a8c65b9dc56152d6e20b4191b")


addresses = st.binary(min_size=32, max_size=32).filter(lambda k: 0 < int.from_bytes(k, "big") < 2**255).map(address_of_key)
u64 = st.integers(min_value=0, max_value=2**64 - 1)
u256 = st.integers(min_value=0, max_value=2**256 - 1)
amounts = st.integers(min_value=1, max_value=2**53 - 1)
actions = st.one_of(
    st.builds(lambda p, q, c, a, n, v, m, r: Transfer.create(payer=p, payee=q, currency=c, amount=a, nonce=n,
                                                             valid_until=v, memo_hash=m, request_id=r),
              addresses, addresses, st.sampled_from(["HOUR", "CRED", "ZZ9"]), amounts, u256, u64,
              st.binary(min_size=32, max_size=32), st.binary(min_size=32, max_size=32)),
    st.builds(lambda a, r, n, v: OpenAccount.create(account=a, role=r, nonce=n, valid_until=v),
              addresses, st.sampled_from(["member", "shop", "treasurer"]), u256, u64),
    st.builds(lambda a, c, l, x, n, v: SetLimit.create(account=a, currency=c, credit_limit=l, ceiling=x,
                                                       nonce=n, valid_until=v),
              addresses, st.just("CRED"), st.integers(0, 2**53 - 1), st.none() | st.integers(0, 2**53 - 1), u256, u64),
    st.builds(lambda a, s, n, v: SetStatus.create(account=a, status=s, nonce=n, valid_until=v),
              addresses, st.sampled_from(["active", "frozen", "closed"]), u256, u64),
)


@settings(max_examples=60, deadline=None)
@given(actions, st.integers(min_value=1, max_value=2**64), st.binary(min_size=32, max_size=32))
def test_fast_hashing_equals_eth_account_and_generic_encoder(action, chain_id, salt):
    domain = Domain(chain_id=chain_id, salt=salt)
    doc = full_message(domain, action)
    ours = domain.digest(action.struct_hash())
    signable = encode_typed_data(full_message=doc)
    assert signable.header == domain.separator
    assert signable.body == action.struct_hash()
    assert eip712.digest(doc) == ours


def test_signature_from_eth_account_recovers_to_signer():
    doc = full_message(DOMAIN, VECTOR)
    signed = Account.sign_typed_data(PAYER_KEY, full_message=doc)
    assert recover_signer(DOMAIN.digest(VECTOR.struct_hash()), signed.signature) == VECTOR.payer


def test_a_signature_for_one_community_is_useless_in_another():
    other = Domain(chain_id=DOMAIN.chain_id, salt=keccak256(b"another community"))
    sig = sign_action(PAYER_KEY, DOMAIN, VECTOR)
    assert recover_signer(other.digest(VECTOR.struct_hash()), sig) != VECTOR.payer


def test_high_s_twin_signature_is_refused():
    sig = bytes.fromhex(sign_action(PAYER_KEY, DOMAIN, VECTOR)[2:])
    n = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
    s = int.from_bytes(sig[32:64], "big")
    twin = sig[:32] + (n - s).to_bytes(32, "big") + bytes([55 - sig[64]])
    with pytest.raises(BadSignature, match="high-s"):
        recover_signer(DOMAIN.digest(VECTOR.struct_hash()), twin)


@pytest.mark.parametrize("sig", ["0x12", "nothex", "0x" + "zz" * 65, "0x" + "00" * 65, 12, None,
                                 "0x" + "11" * 64 + "05"])
def test_malformed_signatures_are_refused(sig):
    with pytest.raises(BadSignature):
        recover_signer(b"\x00" * 32, sig)


@pytest.mark.parametrize("field,value,error", [
    ("payer", "0x123", InvalidAddress),
    ("payee", "0x0c6C78f7274A93b337Fe4177034D8aDCe9Dd1808".replace("C", "c", 1).replace("c", "C", 2), InvalidAddress),
    ("currency", "hour", InvalidInput),
    ("amount", 0, InvalidInput),
    ("amount", -5, InvalidInput),
    ("amount", 1.5, InvalidInput),
    ("amount", 2**53, InvalidInput),
    ("nonce", -1, InvalidInput),
    ("valid_until", 2**64, InvalidInput),
    ("memo_hash", "0x1234", InvalidInput),
])
def test_malformed_transfer_fields_get_their_own_errors(field, value, error):
    fields = dict(payer=VECTOR.payer, payee=PAYEE, currency="HOUR", amount=90, nonce=1, valid_until=1)
    fields[field] = value
    with pytest.raises(error):
        Transfer.create(**fields)


def test_wrong_checksum_is_caught():
    good = VECTOR.payer
    bad = good[:2] + good[2:].swapcase()  # every letter's case flipped: a mixed-case wrong checksum
    with pytest.raises(InvalidAddress, match="checksum"):
        Transfer.create(payer=bad, payee=PAYEE, currency="HOUR", amount=1, nonce=1, valid_until=1)
    lower = Transfer.create(payer=good.lower(), payee=PAYEE, currency="HOUR", amount=1, nonce=1, valid_until=1)
    assert lower.payer == good  # all-lowercase input carries no checksum and is accepted
