"""Sign-In with Ethereum (EIP-4361): passwordless sessions for the HTTP API.

Flow:
1. `challenge(address)` writes nothing: it returns the exact EIP-4361 text for the wallet to
   `personal_sign`, whose nonce is 12 random hex digits followed by a MAC (HMAC-SHA256 with
   the server secret, the one tokens use, first 20 hex digits) of those digits, the address,
   Issued At, Expiration Time and this server's domain, URI and chain id. Any well-formed
   address gets one, member or not, so the endpoint reveals nothing about membership.
   Why stateless: an unauthenticated client can write nothing to storage, and no flood of
   challenges, for any address, can evict or crowd out a member's own (no lockout).
2. `sign_in(message, signature)` checks, in this order, and stops at the first failure
   with an AuthError naming the check (Forbidden for the account check):
     a. shape: the message is exactly the 11 lines this server issues (no optional
        fields, no CR, no trailing newline), each field well-formed;
     b. it is ours: domain, statement, URI, Version 1 and Chain ID equal this server's;
     c. it is still valid: Expiration Time is in the future;
     d. the signature (65 bytes, low-s only, as ledger.core.typed_data) over the EIP-191
        personal_sign digest recovers to the message's address;
     e. this server issued it as written: the nonce's MAC matches the message's address,
        Issued At and Expiration Time (so every line of the message is what we issued);
     f. the account exists in the ledger and is active (else Forbidden);
     g. the nonce is consumed atomically: one INSERT of the nonce (primary key) into
        `auth_challenges`, kept until the challenge expires; if it is already there the
        challenge was used.
   **Nonce policy.** Only a message that passed a-f can consume its nonce (step g), so a
   failed attempt (bad signature, edited field, frozen account) changes nothing and the
   key holder may still use that challenge until it expires; nobody without the key can
   burn someone else's challenge. A consumed nonce never works again: replaying a
   message that already signed in fails at step g ("already used").
3. `authenticate(token)` verifies the bearer token statelessly (HMAC-SHA256 with the
   server secret), then re-reads the account from the ledger on every call: a frozen,
   closed or vanished account is refused at once (Forbidden) and the role returned is
   the ledger's current role, not the one in the token; a token issued before the
   account's last status change (its session epoch, ledger/sessions.py) is refused for
   good (AuthError), so unfreezing an account does not revive the sessions freezing ended.

Tokens are `v1.<base64url(JSON payload)>.<base64url(HMAC-SHA256(secret, "ayni-token." +
"v1." + payload_b64))>`, payload `{"a": address, "r": role at sign-in, "e": expiry unix
s, "s": the log's head seq at sign-in (the session epoch), "n": 8 random bytes hex}`. They
cannot be revoked one by one before expiry (keep the TTL short); a status change of the
account (freeze, close) or rotating the secret file ends every session.
Used challenges are recorded by ledger/sessions.py until they expire.
"""
from __future__ import annotations

import base64
import binascii
import calendar
import hashlib
import hmac
import json
import os
import re
import secrets
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ledger.core.addresses import normalize_address
from ledger.core.eip191 import personal_sign_digest
from ledger.core.errors import InvalidAddress, LedgerError
from ledger.core.typed_data import recover_signer
from ledger.sessions import Sessions

__all__ = ["AuthError", "Forbidden", "Principal", "SiweAuth", "load_or_create_secret",
           "personal_sign_digest", "DEFAULT_STATEMENT", "TOKEN_PREFIX"]


class AuthError(LedgerError):
    """Not (or no longer) signed in: HTTP 401. Nothing was written when this is raised."""

    code = "unauthenticated"


class Forbidden(LedgerError):
    """Signed in (or proved the key) but the account may not act: unknown, frozen or
    closed. HTTP 403."""

    code = "forbidden"


@dataclass(frozen=True)
class Principal:
    address: str      # EIP-55 checksummed
    role: str         # the ledger's current role: member | shop | treasurer | system | auditor
    expires_at: int   # token expiry, unix seconds
    epoch: int = field(default=0, compare=False)  # the log's head seq at sign-in


DEFAULT_STATEMENT = "Sign in to Ayni. This costs nothing and moves no money."
TOKEN_PREFIX = "v1"
NONCE_SALT_HEX = 12                     # random part of a nonce: 48 bits, so nonces differ
NONCE_MAC_HEX = 20                      # MAC part: 80 bits, forging one takes ~2^80 tries
NONCE_LENGTH = NONCE_SALT_HEX + NONCE_MAC_HEX  # 32, within EIP-4361's alphanumeric nonce
MAX_MESSAGE_CHARS = 4096
MAX_SIGNATURE_CHARS = 200
MAX_TOKEN_CHARS = 1024
CLOCK_SKEW_S = 60                       # tolerated lead of a message's Issued At over our clock

_HEADER_SUFFIX = " wants you to sign in with your Ethereum account:"
_NONCE_RE = re.compile(r"[A-Za-z0-9]{8,32}", re.ASCII)
_CHAIN_ID_RE = re.compile(r"[1-9][0-9]{0,77}", re.ASCII)
_TIME_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z", re.ASCII)
_TOKEN_RE = re.compile(r"v1\.([A-Za-z0-9_-]{1,900})\.([A-Za-z0-9_-]{43})", re.ASCII)
_TOKEN_MAC_CONTEXT = b"ayni-token."
_CHALLENGE_MAC_CONTEXT = b"ayni-challenge."  # a nonce's MAC can never pass as a token's
_ACTIVE = "active"


def _iso(ts: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def _parse_iso(value: str, what: str) -> int:
    if not _TIME_RE.fullmatch(value):
        raise AuthError(f"{what} {value[:40]!r} is not a UTC time like 2025-01-31T12:00:00Z")
    try:
        return calendar.timegm(time.strptime(value, "%Y-%m-%dT%H:%M:%SZ"))
    except ValueError:
        raise AuthError(f"{what} {value!r} is not a valid date and time") from None


def _b64e(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64d(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _single_line(value: str, what: str) -> str:
    if not isinstance(value, str) or not value or any(c in value for c in "\r\n\x00"):
        raise ValueError(f"{what} must be non-empty text on one line")
    return value


def load_or_create_secret(path: str | os.PathLike) -> bytes:
    """The token secret: 32 random bytes in `path` (mode 0600), created on first use.
    Safe when several workers start at once: the file appears atomically (written to a
    temporary file, then hard-linked into place), so every worker reads the same bytes.
    Refuses a file that is too short or readable by group or others."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(secrets.token_bytes(32))
                f.flush()
                os.fsync(f.fileno())
            try:
                os.link(tmp, path)  # atomic; fails if another worker won the race
            except FileExistsError:
                pass
        finally:
            tmp.unlink(missing_ok=True)
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ValueError(f"token secret {path} is accessible to group or others "
                         f"(mode {stat.S_IMODE(mode):04o}); run: chmod 600 {path}")
    secret = path.read_bytes()
    if len(secret) < 32:
        raise ValueError(f"token secret {path} holds {len(secret)} bytes; it needs at least 32 "
                         "(delete it to have a new one created)")
    return secret


class SiweAuth:
    def __init__(self, ledger, *, domain: str, uri: str, secret: bytes, token_ttl_s: int = 900,
                 challenge_ttl_s: int = 300, statement: str = DEFAULT_STATEMENT,
                 clock: Callable[[], float] = time.time, sessions: Sessions | None = None):
        """`domain` is the RFC 3986 authority the user sees (e.g. "ayni.example.org" or
        "127.0.0.1:8000"), `uri` the resource signed in to (e.g. "https://ayni.example.org");
        `clock` returns unix seconds (tests inject it). Misconfiguration raises ValueError."""
        self.ledger = ledger
        self.domain = _single_line(domain, "domain")
        if any(c.isspace() for c in domain) or "://" in domain:
            raise ValueError("domain is an authority such as ayni.example.org:443, without scheme or spaces")
        self.uri = _single_line(uri, "uri")
        if any(c.isspace() for c in uri) or ":" not in uri:
            raise ValueError("uri must be an absolute URI without spaces, e.g. https://ayni.example.org")
        self.statement = _single_line(statement, "statement")
        if not isinstance(secret, (bytes, bytearray)) or len(secret) < 16:
            raise ValueError("secret must be at least 16 random bytes (see load_or_create_secret)")
        self._secret = bytes(secret)
        if not (isinstance(token_ttl_s, int) and token_ttl_s > 0
                and isinstance(challenge_ttl_s, int) and challenge_ttl_s > 0):
            raise ValueError("token_ttl_s and challenge_ttl_s must be positive integers")
        self.token_ttl_s = token_ttl_s
        self.challenge_ttl_s = challenge_ttl_s
        self.clock = clock
        self.sessions = sessions or Sessions(ledger)

    def _now(self) -> int:
        return int(self.clock())

    @property
    def chain_id(self) -> int:
        return self.ledger.genesis.domain.chain_id

    # -- challenge -----------------------------------------------------------------
    def message_text(self, address: str, nonce: str, issued_at: int, expires_at: int) -> str:
        """The exact EIP-4361 message for these values (the only form sign_in accepts)."""
        return (f"{self.domain}{_HEADER_SUFFIX}\n"
                f"{address}\n"
                f"\n"
                f"{self.statement}\n"
                f"\n"
                f"URI: {self.uri}\n"
                f"Version: 1\n"
                f"Chain ID: {self.chain_id}\n"
                f"Nonce: {nonce}\n"
                f"Issued At: {_iso(issued_at)}\n"
                f"Expiration Time: {_iso(expires_at)}")

    def challenge(self, address: str) -> dict:
        """Issue a one-time challenge for any well-formed address (member or not: refusal
        happens at sign_in, so this reveals nothing). Malformed address -> InvalidAddress."""
        address = normalize_address(address)
        now = self._now()
        expires_at = now + self.challenge_ttl_s
        salt = secrets.token_hex(NONCE_SALT_HEX // 2)
        nonce = salt + self._challenge_mac(salt, address, now, expires_at)
        message = self.message_text(address, nonce, now, expires_at)  # stores nothing (stateless)
        return {"message": message, "nonce": nonce, "expiresAt": _iso(expires_at)}

    def _challenge_mac(self, salt: str, address: str, issued_at: int, expires_at: int) -> str:
        fields = "\n".join((salt, address, str(issued_at), str(expires_at), self.domain, self.uri,
                            str(self.chain_id), self.statement))
        return hmac.new(self._secret, _CHALLENGE_MAC_CONTEXT + fields.encode("utf-8"),
                        hashlib.sha256).hexdigest()[:NONCE_MAC_HEX]

    def _issued_by_us(self, m: dict) -> bool:
        nonce = m["nonce"]
        if len(nonce) != NONCE_LENGTH:
            return False
        salt, mac = nonce[:NONCE_SALT_HEX], nonce[NONCE_SALT_HEX:]
        return hmac.compare_digest(mac, self._challenge_mac(salt, m["address"], m["issued_at"], m["expires_at"]))

    # -- sign in -------------------------------------------------------------------
    def _parse(self, message: object) -> dict:
        """Strict EIP-4361 parse of exactly the lines this server issues."""
        if not isinstance(message, str) or not message:
            raise AuthError("message must be the EIP-4361 text returned by the challenge")
        if len(message) > MAX_MESSAGE_CHARS:
            raise AuthError(f"message is longer than {MAX_MESSAGE_CHARS} characters")
        if "\r" in message:
            raise AuthError("message must use LF line endings, exactly as issued")
        lines = message.split("\n")
        if len(lines) != 11:
            raise AuthError(f"message has {len(lines)} lines; the sign-in message has 11 "
                            "(no trailing newline, no optional fields)")
        header = lines[0]
        if not header.endswith(_HEADER_SUFFIX):
            raise AuthError("message line 1 must end with 'wants you to sign in with your Ethereum account:'")
        domain = header[: -len(_HEADER_SUFFIX)]
        if domain != self.domain:
            raise AuthError(f"message is for domain {domain[:100]!r}, not {self.domain!r}")
        try:
            address = normalize_address(lines[1])
        except InvalidAddress:
            raise AuthError(f"message line 2 {lines[1][:60]!r} is not an Ethereum address") from None
        if address != lines[1]:
            raise AuthError("message address must be in EIP-55 checksummed form, exactly as issued")
        if lines[2] != "" or lines[4] != "":
            raise AuthError("message lines 3 and 5 must be empty")
        if lines[3] != self.statement:
            raise AuthError("message statement is not this server's sign-in statement")
        fields = {}
        for i, name in enumerate(("URI", "Version", "Chain ID", "Nonce", "Issued At", "Expiration Time"), 5):
            prefix = f"{name}: "
            if not lines[i].startswith(prefix):
                raise AuthError(f"message line {i + 1} must start with {prefix!r}")
            fields[name] = lines[i][len(prefix):]
        if fields["URI"] != self.uri:
            raise AuthError(f"message URI {fields['URI'][:100]!r} is not {self.uri!r}")
        if fields["Version"] != "1":
            raise AuthError("message Version must be 1")
        if not _CHAIN_ID_RE.fullmatch(fields["Chain ID"]) or int(fields["Chain ID"]) != self.chain_id:
            raise AuthError(f"message Chain ID {fields['Chain ID'][:80]!r} is not this community's "
                            f"chain id {self.chain_id}")
        if not _NONCE_RE.fullmatch(fields["Nonce"]):
            raise AuthError("message Nonce must be 8 to 32 letters and digits")
        return {"address": address, "nonce": fields["Nonce"],
                "issued_at": _parse_iso(fields["Issued At"], "Issued At"),
                "expires_at": _parse_iso(fields["Expiration Time"], "Expiration Time")}

    def sign_in(self, message: str, signature: str) -> dict:
        """Verify a signed challenge and return {"token", "address", "role", "expiresAt"}.
        AuthError names the failed check; Forbidden if the key's account is unknown or not
        active. Only a fully verified message consumes its nonce (see module docstring)."""
        m = self._parse(message)
        now = self._now()
        if m["expires_at"] <= now:
            raise AuthError(f"the sign-in challenge expired at {_iso(m['expires_at'])}; ask for a new one")
        if m["issued_at"] > now + CLOCK_SKEW_S:
            raise AuthError("message Issued At is in the future")
        if not isinstance(signature, str) or len(signature) > MAX_SIGNATURE_CHARS:
            raise AuthError("signature must be 65 bytes as 0x-prefixed hex")
        try:
            signer = recover_signer(personal_sign_digest(message), signature)
        except LedgerError as exc:  # BadSignature: malformed, high-s or unrecoverable
            raise AuthError(f"bad signature: {exc.message}") from None
        if signer != m["address"]:
            raise AuthError(f"the message was signed by {signer}, not by {m['address']}")
        if not self._issued_by_us(m):
            raise AuthError("no such sign-in challenge: this server did not issue it as written (unknown "
                            "nonce, or its address, Issued At or Expiration Time changed); ask for a new one")
        epoch = self.sessions.epoch()  # before the status check: a racing freeze comes after it
        account = self.ledger.account(m["address"])
        if account is None:
            raise Forbidden(f"{m['address']} has no account in this community")
        if account.status != _ACTIVE:
            raise Forbidden(f"account {m['address']} is {account.status}")
        if not self.sessions.consume_challenge(nonce=m["nonce"], address=m["address"], issued_at=m["issued_at"],
                                               expires_at=m["expires_at"], now=now):
            raise AuthError("this sign-in challenge was already used; ask for a new one")
        expires_at = now + self.token_ttl_s
        return {"token": self._mint(account.address, account.role, expires_at, epoch), "address": account.address,
                "role": account.role, "expiresAt": _iso(expires_at)}

    # -- tokens --------------------------------------------------------------------
    def _mac(self, payload_b64: str) -> bytes:
        return hmac.new(self._secret, _TOKEN_MAC_CONTEXT + f"{TOKEN_PREFIX}.{payload_b64}".encode("ascii"),
                        hashlib.sha256).digest()

    def _mint(self, address: str, role: str, expires_at: int, epoch: int) -> str:
        payload = json.dumps({"a": address, "r": role, "e": expires_at, "s": epoch, "n": secrets.token_hex(8)},
                             separators=(",", ":"), sort_keys=True).encode("ascii")
        payload_b64 = _b64e(payload)
        return f"{TOKEN_PREFIX}.{payload_b64}.{_b64e(self._mac(payload_b64))}"

    def authenticate(self, token: str) -> Principal:
        """The principal of a bearer token (without the "Bearer " prefix). AuthError if the
        token is garbage, forged, tampered or expired; Forbidden if its account is no longer
        active. The role is the ledger's current one."""
        if not isinstance(token, str) or len(token) > MAX_TOKEN_CHARS:
            raise AuthError("missing or malformed bearer token")
        match = _TOKEN_RE.fullmatch(token)
        if match is None:
            raise AuthError("missing or malformed bearer token")
        payload_b64, mac_b64 = match.groups()
        # compare the text, not decoded bytes: base64 ignores a last character's spare
        # bits, so decoding would accept several spellings of one MAC
        if not hmac.compare_digest(mac_b64, _b64e(self._mac(payload_b64))):
            raise AuthError("bearer token signature is invalid (tampered, or from another server)")
        try:
            payload = json.loads(_b64d(payload_b64))
            address, expires_at, epoch = payload["a"], payload["e"], payload["s"]
        except (binascii.Error, ValueError, TypeError, KeyError):
            raise AuthError("malformed bearer token (sign in again)") from None
        if any(isinstance(v, bool) or not isinstance(v, int) or v < 0 for v in (expires_at, epoch)):
            raise AuthError("malformed bearer token")
        try:
            if normalize_address(address) != address:
                raise InvalidAddress("not checksummed")
        except InvalidAddress:
            raise AuthError("malformed bearer token") from None
        if expires_at <= self._now():
            raise AuthError(f"bearer token expired at {_iso(expires_at)}; sign in again")
        session = self.sessions.account(address, epoch)
        if session is None:
            raise Forbidden(f"{address} has no account in this community")
        account = session.account
        if account.status != _ACTIVE:
            raise Forbidden(f"account {address} is {account.status}")
        if session.revoked:
            raise AuthError("this session ended when the account's status changed (frozen or closed "
                            "since sign-in); sign in again")
        return Principal(address=account.address, role=account.role, expires_at=expires_at, epoch=epoch)
