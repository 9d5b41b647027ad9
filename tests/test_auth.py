"""Sign-In with Ethereum (api/auth.py): challenges, personal_sign verification, one-time
nonces, stateless tokens, and the ledger as the source of roles and account status.
Runs on SQLite and PostgreSQL (the `community` fixture)."""
from __future__ import annotations

import os
import re
import stat
import threading
import time

import pytest
from eth_account import Account
from eth_account.messages import _hash_eip191_message, encode_defunct
from sqlalchemy import select, update

from api.auth import (DEFAULT_STATEMENT, AuthError, Forbidden, Principal, SiweAuth, load_or_create_secret,
                      personal_sign_digest)
from ledger import signing
from ledger.core.errors import InvalidAddress, LedgerError
from ledger.core.typed_data import address_of_key
from ledger.store import tables as T
from ledger.store.auth_tables import auth_challenges
from ledger.store.tables import metadata

SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
DOMAIN = "ayni.example.org"
URI = "https://ayni.example.org"
SECRET = b"s" * 32


class FakeClock:
    def __init__(self, start: float | None = None):
        self.now = float(int(time.time()) if start is None else start)

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def auth(community, clock):
    # Until migration 0004 is wired into the chain, create the table directly
    # (checkfirst: a no-op once Ledger.open's migrations made it).
    metadata.create_all(community.ledger.engine, tables=[auth_challenges])
    return SiweAuth(community.ledger, domain=DOMAIN, uri=URI, secret=SECRET, clock=clock)


def sign(message: str, key: bytes) -> str:
    return "0x" + bytes(Account.sign_message(encode_defunct(text=message), key).signature).hex()


def challenges(community) -> list[tuple]:
    with community.ledger.engine.connect() as conn:
        return sorted(map(tuple, conn.execute(select(auth_challenges)).all()))


def sign_in_as(auth, community, name: str) -> dict:
    ch = auth.challenge(community.addr(name))
    return auth.sign_in(ch["message"], sign(ch["message"], community.keys[name]))


def test_errors_are_ledger_errors_with_stable_codes():
    assert issubclass(AuthError, LedgerError) and AuthError("x").code == "unauthenticated"
    assert issubclass(Forbidden, LedgerError) and Forbidden("x").code == "forbidden"
    assert AuthError("why").message == "why"


# -- the happy path ---------------------------------------------------------------------

def test_challenge_is_the_exact_eip4361_text(auth, community, clock):
    alice = community.member("alice")
    ch = auth.challenge(alice.lower())  # any spelling in, checksummed address out
    assert set(ch) == {"message", "nonce", "expiresAt"}
    assert re.fullmatch(r"[A-Za-z0-9]{16,}", ch["nonce"])
    iso = lambda t: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))  # noqa: E731
    now = int(clock.now)
    assert ch["expiresAt"] == iso(now + 300)
    assert ch["message"] == (
        f"ayni.example.org wants you to sign in with your Ethereum account:\n"
        f"{alice}\n"
        f"\n"
        f"{DEFAULT_STATEMENT}\n"
        f"\n"
        f"URI: https://ayni.example.org\n"
        f"Version: 1\n"
        f"Chain ID: {community.domain.chain_id}\n"
        f"Nonce: {ch['nonce']}\n"
        f"Issued At: {iso(now)}\n"
        f"Expiration Time: {iso(now + 300)}")
    assert auth.challenge(alice)["nonce"] != ch["nonce"]
    assert challenges(community) == []  # stateless: issuing a challenge writes nothing


def test_digest_is_personal_sign(auth, community):
    community.member("alice")
    message = auth.challenge(community.addr("alice"))["message"]
    assert personal_sign_digest(message) == _hash_eip191_message(encode_defunct(text=message))
    assert personal_sign_digest("héllo ✓") == _hash_eip191_message(encode_defunct(text="héllo ✓"))
    sig = sign(message, community.keys["alice"])
    assert Account.recover_message(encode_defunct(text=message), signature=sig) == community.addr("alice")


def test_sign_in_returns_a_token_that_authenticates(auth, community, clock):
    alice = community.member("alice")
    ch = auth.challenge(alice)
    out = auth.sign_in(ch["message"], sign(ch["message"], community.keys["alice"]))
    assert set(out) == {"token", "address", "role", "expiresAt"}
    assert out["address"] == alice and out["role"] == "member"
    assert out["expiresAt"] == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(clock.now) + 900))
    assert re.fullmatch(r"v1\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{43}", out["token"])
    assert auth.authenticate(out["token"]) == Principal(alice, "member", int(clock.now) + 900)
    (row,) = challenges(community)
    assert row[4] == int(clock.now)  # consumed, at sign-in time
    clock.advance(899)
    assert auth.authenticate(out["token"]).address == alice


def test_signature_with_v_0_or_1_is_accepted(auth, community):
    community.member("alice")
    ch = auth.challenge(community.addr("alice"))
    sig = sign(ch["message"], community.keys["alice"])
    sig01 = sig[:-2] + format(int(sig[-2:], 16) - 27, "02x")
    assert auth.sign_in(ch["message"], sig01)["address"] == community.addr("alice")


@pytest.mark.parametrize("role", ["member", "shop", "treasurer"])
def test_role_comes_from_the_ledger(auth, community, role):
    if role == "treasurer":
        community.keys["t"] = community.treasurer_key
    else:
        community.member("t", role=role)
    out = sign_in_as(auth, community, "t")
    assert out["role"] == role
    assert auth.authenticate(out["token"]).role == role


def test_authenticate_takes_the_current_role_not_the_tokens(auth, community):
    community.member("shop", role="member")
    token = sign_in_as(auth, community, "shop")["token"]
    # Roles cannot change through the ledger today; edit the projection to prove that the
    # token's role is never trusted.
    with community.ledger.engine.begin() as conn:
        conn.execute(update(T.accounts).where(T.accounts.c.address == community.addr("shop")).values(role="shop"))
    assert auth.authenticate(token).role == "shop"


# -- refusals at sign-in ----------------------------------------------------------------

def test_replayed_message_is_refused(auth, community):
    community.member("alice")
    ch = auth.challenge(community.addr("alice"))
    sig = sign(ch["message"], community.keys["alice"])
    auth.sign_in(ch["message"], sig)
    before = challenges(community)
    with pytest.raises(AuthError, match="already used"):
        auth.sign_in(ch["message"], sig)
    assert challenges(community) == before


def test_concurrent_sign_ins_with_one_message_yield_one_token(auth, community):
    community.member("alice")
    ch = auth.challenge(community.addr("alice"))
    sig = sign(ch["message"], community.keys["alice"])
    results, barrier = [], threading.Barrier(8)

    def attempt():
        barrier.wait()
        try:
            results.append(auth.sign_in(ch["message"], sig))
        except AuthError as exc:
            results.append(exc)

    threads = [threading.Thread(target=attempt) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 8
    assert sum(isinstance(r, dict) for r in results) == 1
    assert all("already used" in r.message for r in results if isinstance(r, AuthError))


def test_message_signed_by_another_key_is_refused_and_the_challenge_survives(auth, community):
    community.member("alice")
    community.member("mallory")
    ch = auth.challenge(community.addr("alice"))
    before = challenges(community)
    with pytest.raises(AuthError, match=f"signed by {community.addr('mallory')}, not by {community.addr('alice')}"):
        auth.sign_in(ch["message"], sign(ch["message"], community.keys["mallory"]))
    assert challenges(community) == before  # a failed attempt consumes nothing
    assert auth.sign_in(ch["message"], sign(ch["message"], community.keys["alice"]))["address"] == community.addr("alice")


def _edits(community, ch):
    m = ch["message"]
    chain_id = community.domain.chain_id
    expiry = re.search(r"Expiration Time: (.*)$", m).group(1)
    later = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 86400))
    return {
        "domain": (m.replace(DOMAIN, "evil.example.org", 1), "domain"),
        "scheme": ("https://" + m, "domain"),
        "chain id": (m.replace(f"Chain ID: {chain_id}", f"Chain ID: {chain_id + 1}"), "Chain ID"),
        "nonce": (m.replace(ch["nonce"], "A" * 24), "no such sign-in challenge"),
        "nonce mac": (m.replace(ch["nonce"], ch["nonce"][:-1] + ("0" if ch["nonce"][-1] != "0" else "1")),
                      "did not issue it as written"),
        "expiration": (m.replace(expiry, later), "did not issue it as written"),
        "issued at": (re.sub(r"Issued At: .*", "Issued At: 2020-01-01T00:00:00Z", m), "did not issue it as written"),
        "uri": (m.replace(f"URI: {URI}", "URI: https://evil.example.org"), "URI"),
        "statement": (m.replace(DEFAULT_STATEMENT, "Transfer all my money."), "statement"),
        "version": (m.replace("Version: 1", "Version: 2"), "Version"),
        "lowercase address": (m.replace(community.addr("alice"), community.addr("alice").lower()), "EIP-55"),
        "trailing newline": (m + "\n", "11"),
        "extra field": (m + "\nRequest ID: 1", "lines"),
        "crlf": (m.replace("\n", "\r\n"), "LF"),
        "bad time": (m.replace(expiry, "2999-02-30T00:00:00Z"), "not a valid date"),
        "time format": (m.replace(expiry, expiry.replace("Z", "+00:00")), "UTC time"),
    }


@pytest.mark.parametrize("edit", ["domain", "scheme", "chain id", "nonce", "nonce mac", "expiration", "issued at", "uri",
                                  "statement", "version", "lowercase address", "trailing newline",
                                  "extra field", "crlf", "bad time", "time format"])
def test_edited_message_is_refused_even_when_re_signed(auth, community, edit):
    community.member("alice")
    ch = auth.challenge(community.addr("alice"))
    edited, why = _edits(community, ch)[edit]
    assert edited != ch["message"]
    before = challenges(community)
    with pytest.raises(AuthError, match=re.escape(why)):
        auth.sign_in(edited, sign(edited, community.keys["alice"]))  # re-signed by the holder
    with pytest.raises(AuthError):
        auth.sign_in(edited, sign(ch["message"], community.keys["alice"]))  # original signature
    assert challenges(community) == before
    # the untouched message still signs in: failed attempts did not burn the nonce
    assert auth.sign_in(ch["message"], sign(ch["message"], community.keys["alice"]))["role"] == "member"


def test_edited_address_is_refused(auth, community):
    community.member("alice")
    community.member("bob")
    ch = auth.challenge(community.addr("alice"))
    edited = ch["message"].replace(community.addr("alice"), community.addr("bob"))
    # signed by alice: the signer is not the named address
    with pytest.raises(AuthError, match="signed by"):
        auth.sign_in(edited, sign(edited, community.keys["alice"]))
    # signed by bob: bob did not get this challenge
    with pytest.raises(AuthError, match="did not issue it as written"):
        auth.sign_in(edited, sign(edited, community.keys["bob"]))


def test_expired_challenge_is_refused(auth, community, clock):
    community.member("alice")
    ch = auth.challenge(community.addr("alice"))
    sig = sign(ch["message"], community.keys["alice"])
    clock.advance(300)
    with pytest.raises(AuthError, match="expired"):
        auth.sign_in(ch["message"], sig)
    # one second earlier it would have worked
    clock.advance(-1)
    assert auth.sign_in(ch["message"], sig)["address"] == community.addr("alice")


def test_used_challenges_are_kept_until_they_expire_then_pruned(auth, community, clock):
    community.member("alice")
    t0 = int(clock.now)
    assert sign_in_as(auth, community, "alice") and len(challenges(community)) == 1
    clock.advance(100)
    sign_in_as(auth, community, "alice")
    assert len(challenges(community)) == 2
    clock.advance(201)  # the first one has expired: the next sign-in deletes its row
    sign_in_as(auth, community, "alice")
    assert sorted(r[2] for r in challenges(community)) == [t0 + 100, t0 + 301]


def test_a_flood_of_challenges_stores_nothing_and_locks_nobody_out(auth, community):
    """Issue 13 review: challenges were stored at issue time, 5 per address (a new one evicting
    the oldest) and 10,000 in total, so anyone could evict a member's challenge or fill the
    cap. Now issuing writes nothing, and a member's challenge outlives any flood."""
    community.member("alice")
    alice = community.addr("alice")
    mine = auth.challenge(alice)
    for _ in range(50):
        auth.challenge(alice)
        auth.challenge(address_of_key(signing.new_key()))
    assert challenges(community) == []
    assert auth.sign_in(mine["message"], sign(mine["message"], community.keys["alice"]))["address"] == alice


def test_a_challenge_from_another_server_secret_is_refused(auth, community, clock):
    community.member("alice")
    other = SiweAuth(community.ledger, domain=DOMAIN, uri=URI, secret=b"t" * 32, clock=clock)
    ch = other.challenge(community.addr("alice"))
    with pytest.raises(AuthError, match="did not issue it as written"):
        auth.sign_in(ch["message"], sign(ch["message"], community.keys["alice"]))
    assert challenges(community) == []


def test_unknown_account_is_refused_at_sign_in_not_at_challenge(auth, community):
    key = signing.new_key()
    stranger = address_of_key(key)
    ch = auth.challenge(stranger)  # no membership leak: same answer as for a member
    assert set(ch) == {"message", "nonce", "expiresAt"}
    sig = sign(ch["message"], key)
    before = challenges(community)
    with pytest.raises(Forbidden, match="no account"):
        auth.sign_in(ch["message"], sig)
    assert challenges(community) == before
    # once the treasurer opens the account, the same signed challenge works
    community.ledger.submit(signing.open_account(community.treasurer_key, community.domain, account=stranger))
    assert auth.sign_in(ch["message"], sig)["address"] == stranger


def test_an_unproven_key_learns_nothing_about_membership(auth, community):
    key = signing.new_key()
    ch = auth.challenge(address_of_key(key))
    with pytest.raises(AuthError):  # wrong key: 401 before any account lookup, not 403
        auth.sign_in(ch["message"], sign(ch["message"], signing.new_key()))


def test_frozen_account_loses_access_at_once(auth, community):
    alice = community.member("alice")
    token = sign_in_as(auth, community, "alice")["token"]
    community.ledger.submit(signing.set_status(community.treasurer_key, community.domain,
                                               account=alice, status="frozen"))
    with pytest.raises(Forbidden, match="frozen"):
        auth.authenticate(token)
    ch = auth.challenge(alice)
    with pytest.raises(Forbidden, match="frozen"):
        auth.sign_in(ch["message"], sign(ch["message"], community.keys["alice"]))
    community.ledger.submit(signing.set_status(community.treasurer_key, community.domain,
                                               account=alice, status="active"))
    # defect 13.7: freezing ended that session for good; unfreezing does not revive it
    with pytest.raises(AuthError, match="session ended"):
        auth.authenticate(token)
    fresh = sign_in_as(auth, community, "alice")["token"]  # a new sign-in works
    assert auth.authenticate(fresh).address == alice


def test_closed_account_loses_access(auth, community):
    alice = community.member("alice")
    token = sign_in_as(auth, community, "alice")["token"]
    community.ledger.submit(signing.set_status(community.treasurer_key, community.domain,
                                               account=alice, status="closed"))
    with pytest.raises(Forbidden, match="closed"):
        auth.authenticate(token)


# -- tokens ---------------------------------------------------------------------------

def test_expired_token_is_refused(auth, community, clock):
    community.member("alice")
    token = sign_in_as(auth, community, "alice")["token"]
    clock.advance(900)
    with pytest.raises(AuthError, match="expired"):
        auth.authenticate(token)


def test_tampered_tokens_are_refused(auth, community, clock):
    community.member("alice")
    community.member("bob")
    token = sign_in_as(auth, community, "alice")["token"]
    prefix, payload, mac = token.split(".")
    import base64
    import json
    body = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    forged = []
    for change in ({"a": community.addr("bob")}, {"e": body["e"] + 3600}, {"r": "treasurer"}):
        p = base64.urlsafe_b64encode(json.dumps({**body, **change}).encode()).rstrip(b"=").decode()
        forged.append(f"{prefix}.{p}.{mac}")
    flip = lambda s, i: s[:i] + ("A" if s[i] != "A" else "B") + s[i + 1:]  # noqa: E731
    forged += [flip(token, len(token) - 1), flip(token, len(prefix) + 1), flip(token, len(token) - 20),
               "v2" + token[2:], token + "A", token[:-1]]
    other = SiweAuth(community.ledger, domain=DOMAIN, uri=URI, secret=b"o" * 32, clock=clock)
    for bad in forged:
        with pytest.raises(AuthError) as info:
            auth.authenticate(bad)
        assert type(info.value) is AuthError, bad
    with pytest.raises(AuthError, match="invalid"):
        other.authenticate(token)  # another server's secret
    assert auth.authenticate(token).address == community.addr("alice")


def test_mac_valid_but_malformed_payload_is_an_auth_error(auth, community):
    # Only someone holding the secret could make these; still never a 500.
    import base64

    def token_for(raw: bytes) -> str:
        p = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
        return f"v1.{p}.{base64.urlsafe_b64encode(auth._mac(p)).rstrip(b'=').decode()}"

    for raw in (b"not json", b"[]", b"{}", b'{"a": 1, "e": 99999999999}', b'{"a": "x"}',
                b'{"a": "x", "e": 99999999999}', b'{"a": "0x0000000000000000000000000000000000000000", "e": true}',
                b'{"a": "0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed", "e": 99999999999, "s": 0}',  # not checksummed
                b'{"a": "0x0000000000000000000000000000000000000000", "e": 99999999999}',  # no session epoch
                b'{"a": "0x0000000000000000000000000000000000000000", "e": 99999999999, "s": -1}',
                b"\xff\xfe"):
        with pytest.raises(AuthError) as info:
            auth.authenticate(token_for(raw))
        assert type(info.value) is AuthError, raw
    # well-formed, but nobody's account: 403
    with pytest.raises(Forbidden):
        auth.authenticate(token_for(b'{"a": "0x0000000000000000000000000000000000000000", "e": 99999999999, "s": 0}'))


# -- garbage never escapes as another exception type ----------------------------------------

GARBAGE = [None, "", " ", 0, 1.5, b"bytes", [], {}, "x" * 1_000_000, "\x00", "\ud800", "0x", "0xzz",
           "0x" + "00" * 65, "0x" + "ff" * 65, "0x" + "g" * 130, "Bearer abc", "v1..", "v1.a.b", "v1.!!!.x",
           "v1." + "A" * 2000 + "." + "A" * 43, "v1.AAAA." + "A" * 43, "é" * 100]


@pytest.mark.parametrize("value", GARBAGE, ids=range(len(GARBAGE)))
def test_garbage_gives_auth_error(auth, community, value):
    community.member("alice")
    ch = auth.challenge(community.addr("alice"))
    sig = sign(ch["message"], community.keys["alice"])
    before = challenges(community)
    for call in (lambda: auth.sign_in(value, sig), lambda: auth.sign_in(ch["message"], value),
                 lambda: auth.sign_in(value, value), lambda: auth.authenticate(value)):
        with pytest.raises(AuthError) as info:
            call()
        assert type(info.value) is AuthError
    assert challenges(community) == before


def test_high_s_signature_is_refused(auth, community):
    community.member("alice")
    ch = auth.challenge(community.addr("alice"))
    sig = bytes.fromhex(sign(ch["message"], community.keys["alice"])[2:])
    v = sig[64] - 27
    high_s = (SECP256K1_N - int.from_bytes(sig[32:64], "big")).to_bytes(32, "big")
    twin = "0x" + (sig[:32] + high_s + bytes([(1 - v) + 27])).hex()
    # the malleable twin is a valid ECDSA signature by the same key, yet never accepted
    import coincurve
    recovered = coincurve.PublicKey.from_signature_and_message(
        sig[:32] + high_s + bytes([1 - v]), personal_sign_digest(ch["message"]), hasher=None)
    assert recovered.format() == coincurve.PrivateKey(community.keys["alice"]).public_key.format()
    with pytest.raises(AuthError, match="high-s"):
        auth.sign_in(ch["message"], twin)


@pytest.mark.parametrize("value", [None, "", "0x123", "0x" + "g" * 40, 42, "x" * 100_000,
                                   "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeD"])  # wrong checksum
def test_challenge_refuses_malformed_addresses(auth, community, value):
    with pytest.raises(InvalidAddress):
        auth.challenge(value)
    assert challenges(community) == []


def test_misconfiguration_is_refused(community):
    ok = dict(domain=DOMAIN, uri=URI, secret=SECRET)
    for bad in ({"domain": "https://x"}, {"domain": "a b"}, {"domain": ""}, {"uri": "no-scheme"},
                {"uri": "https://x\nURI: y"}, {"statement": "two\nlines"}, {"secret": b"short"},
                {"secret": "text" * 10}, {"token_ttl_s": 0}, {"challenge_ttl_s": -1}):
        with pytest.raises(ValueError):
            SiweAuth(community.ledger, **{**ok, **bad})


# -- the token secret -------------------------------------------------------------------

def test_load_or_create_secret(tmp_path):
    path = tmp_path / "keys" / "auth-secret"
    secret = load_or_create_secret(path)
    assert len(secret) == 32
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert load_or_create_secret(path) == secret
    assert [p.name for p in path.parent.iterdir()] == ["auth-secret"]  # no temp files left


def test_workers_starting_together_share_one_secret(tmp_path):
    path = tmp_path / "auth-secret"
    results, barrier = [], threading.Barrier(16)

    def worker():
        barrier.wait()
        results.append(load_or_create_secret(path))

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 16 and len(set(results)) == 1


def test_secret_file_must_be_private_and_long_enough(tmp_path):
    loose = tmp_path / "loose"
    loose.write_bytes(os.urandom(32))
    os.chmod(loose, 0o644)
    with pytest.raises(ValueError, match="chmod 600"):
        load_or_create_secret(loose)
    short = tmp_path / "short"
    short.write_bytes(b"abc")
    os.chmod(short, 0o600)
    with pytest.raises(ValueError, match="at least 32"):
        load_or_create_secret(short)
