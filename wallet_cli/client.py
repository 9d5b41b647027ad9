"""The wallet's HTTP client for the Ayni API (httpx), signing in with the member's own key.

    with ApiClient(cfg.api_url, key=key, purpose="reconciliation", timeout=cfg.timeout) as api:
        me = api.get(f"/v1/accounts/{api.address}")        # signs in on first use
        posted = api.post("/v1/transfers", body, auth=False)
        community = api.community(pin_chain_id=cfg.chain_id, pin_salt=cfg.community_salt)

or `open_client(cfg, purpose=...)`, which resolves and unlocks the configured key first.

Every failure is a WalletError with a one-line message and a code: `unreachable` (connection
refused, DNS, reset), `timeout`, `bad_response` (not the API's JSON), or the server's own
error code (`credit_limit_exceeded`, `forbidden`, ...) with the server's message.
Sign-in is SIWE (EIP-4361, see api/auth.py): POST /v1/auth/challenge {address} returns the
message, signed locally with EIP-191 personal_sign, POST /v1/auth/token returns a bearer
token kept in memory only. A 401 (token expired or from a restarted server) makes the
client sign in again once and repeat the request.
"""
from __future__ import annotations

from dataclasses import dataclass

import httpx

from ledger.core.amounts import Currency
from ledger.core.codec import hex0x
from ledger.core.errors import LedgerError
from ledger.core.purposes import purpose_for
from ledger.core.eip191 import personal_sign_digest
from ledger.core.typed_data import Domain, address_of_key, sign_digest

from .config import WalletConfig, WalletError

PURPOSE_HEADER = "Ayni-Purpose"


def personal_sign(key: bytes, message: str) -> str:
    """EIP-191 personal_sign of a text message (what MetaMask does for SIWE)."""
    return sign_digest(key, personal_sign_digest(message))


@dataclass(frozen=True)
class Community:
    """What GET /v1/community says: the EIP-712 domain to sign for and the currencies."""

    name: str
    domain: Domain
    currencies: dict[str, Currency]
    anchor: dict | None

    @classmethod
    def from_json(cls, doc: dict) -> "Community":
        try:
            d = doc["domain"]
            domain = Domain(chain_id=int(d["chainId"]), salt=bytes.fromhex(d["salt"].removeprefix("0x")),
                            name=d["name"], version=d["version"])
            currencies = {c["code"]: Currency(c["code"], c["name"], c["style"], int(c.get("decimals", 0)))
                          for c in doc["currencies"]}
            return cls(str(doc.get("community", "")), domain, currencies, doc.get("anchor"))
        except (KeyError, TypeError, ValueError, AttributeError, LedgerError) as exc:
            raise WalletError(f"the API's /v1/community document is malformed ({type(exc).__name__}: {exc})",
                              "bad_response") from None

    def currency(self, code: str | None) -> Currency:
        """The named currency, or the only one when `code` is None."""
        if code is None:
            if len(self.currencies) == 1:
                return next(iter(self.currencies.values()))
            raise WalletError(f"say which currency: --currency {' or '.join(self.currencies)}", "invalid_input")
        cur = self.currencies.get(code.upper())
        if cur is None:
            raise WalletError(f"currency {code!r} is not used in this community (it uses "
                              f"{', '.join(self.currencies)})", "unknown_currency")
        return cur


class ApiClient:
    def __init__(self, base_url: str, key: bytes | None = None, purpose: str | None = None,
                 timeout: float = 10.0):
        """`key`: the 32-byte private key to sign in with (None: anonymous requests only).
        `purpose`: sent as the `Ayni-Purpose` header on every request (the data-use purpose
        the server checks for reads of other members' data), unless a call overrides it."""
        self.base_url = base_url.rstrip("/")
        self.key = key
        self.purpose = purpose
        self.address = address_of_key(key) if key is not None else None
        self.token: str | None = None
        self.role: str | None = None  # the signed-in account's role, as the server says at sign-in
        self._community: Community | None = None
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout,
                                  headers={"User-Agent": "ayni-wallet/1"})

    def __enter__(self) -> "ApiClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # -- transport ---------------------------------------------------------------------
    def _send(self, method: str, path: str, *, params=None, json=None, auth: bool, purpose: str | None):
        headers = {}
        if purpose or self.purpose:
            headers[PURPOSE_HEADER] = purpose or self.purpose
        if auth and self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        try:
            return self._http.request(method, path, params=params, json=json, headers=headers)
        except httpx.TimeoutException:
            raise WalletError(f"the Ayni API at {self.base_url} did not answer in time ({method} {path})",
                              "timeout") from None
        except httpx.InvalidURL as exc:
            raise WalletError(f"API URL {self.base_url!r} is not valid: {exc}", "config") from None
        except httpx.HTTPError as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise WalletError(f"cannot reach the Ayni API at {self.base_url}: {reason}", "unreachable") from None

    def _decode(self, r: httpx.Response):
        try:
            body = r.json()
        except ValueError:
            body = None
        if r.is_success:
            if body is None:
                raise WalletError(f"the API answered {r.request.method} {r.request.url.path} with HTTP "
                                  f"{r.status_code} but no JSON (is {self.base_url} an Ayni API?)", "bad_response")
            return body
        err = body.get("error") if isinstance(body, dict) else None
        if isinstance(err, dict) and isinstance(err.get("code"), str):
            raise WalletError(f"{err['code']}: {err.get('message', '')}", err["code"])
        raise WalletError(f"the API answered {r.request.method} {r.request.url.path} with HTTP {r.status_code}"
                          f" (is {self.base_url} an Ayni API?)", "bad_response")

    def request(self, method: str, path: str, *, params=None, json=None, auth: bool = True,
                purpose: str | None = None):
        """One API call; returns the decoded JSON body. With `auth` and a key, signs in
        first if needed, and once more if the server says the token is no longer valid."""
        if auth and self.key is not None and self.token is None:
            self.sign_in()
        r = self._send(method, path, params=params, json=json, auth=auth, purpose=purpose)
        if r.status_code == 401 and auth and self.key is not None:
            self.token = None
            self.sign_in()
            r = self._send(method, path, params=params, json=json, auth=auth, purpose=purpose)
        return self._decode(r)

    def get(self, path: str, params: dict | None = None, *, auth: bool = True, purpose: str | None = None):
        return self.request("GET", path, params={k: v for k, v in (params or {}).items() if v is not None},
                            auth=auth, purpose=purpose)

    def post(self, path: str, json: dict | None = None, *, auth: bool = True, purpose: str | None = None):
        return self.request("POST", path, json=json if json is not None else {}, auth=auth, purpose=purpose)

    # -- sign-in -----------------------------------------------------------------------
    def sign_in(self) -> dict:
        """SIWE: challenge, personal_sign locally, exchange for a token (kept in memory).
        Returns the server's answer {"token", "address", "role", "expiresAt"}."""
        if self.key is None:
            raise WalletError("signing in needs a key", "no_key")
        ch = self._decode(self._send("POST", "/v1/auth/challenge", json={"address": self.address},
                                     auth=False, purpose=None))
        message = ch.get("message") if isinstance(ch, dict) else None
        if not isinstance(message, str):
            raise WalletError("the API's sign-in challenge has no message", "bad_response")
        # Sign only what names us, so a hostile server cannot make us sign some other text.
        if message.split("\n")[1:2] != [self.address] or "wants you to sign in" not in message:
            raise WalletError("the API's sign-in message does not name this key; refusing to sign it",
                              "bad_response")
        out = self._decode(self._send("POST", "/v1/auth/token", json={
            "message": message, "signature": personal_sign(self.key, message)}, auth=False, purpose=None))
        self.token = out.get("token")
        if not self.token:
            raise WalletError("the API's sign-in answer has no token", "bad_response")
        self.role = out.get("role") if isinstance(out.get("role"), str) else None
        return out

    # -- the community -------------------------------------------------------------------
    def community(self, *, pin_chain_id: int | None = None, pin_salt: str | None = None) -> Community:
        """GET /v1/community (cached). Refuses (code `wrong_community`) when the server's
        EIP-712 domain differs from what the config pins: signing for another chain or
        community would make a signature valid somewhere the member did not intend."""
        if self._community is None:
            self._community = Community.from_json(self.get("/v1/community", auth=False))
        d = self._community.domain
        if pin_chain_id is not None and d.chain_id != pin_chain_id:
            raise WalletError(f"the API's community signs on chain id {d.chain_id}, but this wallet is pinned "
                              f"to chain id {pin_chain_id}; refusing to sign", "wrong_community")
        if pin_salt is not None and hex0x(d.salt) != pin_salt.lower():
            raise WalletError(f"the API's community salt {hex0x(d.salt)} is not the pinned {pin_salt}; "
                              "refusing to sign", "wrong_community")
        return self._community


def open_client(cfg: WalletConfig, *, purpose: str | None = None, need_key: bool = True) -> ApiClient:
    """An ApiClient for the configured API, unlocked with the configured key (passphrase
    from --password-file, AYNI_WALLET_PASSWORD or a hidden prompt) when `need_key`."""
    key = None
    if need_key:
        from .keys import unlock
        key = unlock(cfg)
    return ApiClient(cfg.api_url, key=key, purpose=purpose, timeout=cfg.timeout)


def open_ledger_reader(cfg: WalletConfig) -> ApiClient:
    """A signed-in client for reading the whole ledger (log, balance sheet, anchors), declaring
    the purpose of the key's role (ledger/core/purposes.py): `reconciliation` for a treasurer,
    `audit` for an auditor."""
    client = open_client(cfg)
    try:
        client.sign_in()
    except BaseException:
        client.close()
        raise
    client.purpose = purpose_for(reader=client.address, subject=None, reader_role=client.role)
    return client


__all__ = ["ApiClient", "open_ledger_reader", "Community", "WalletError", "open_client", "personal_sign", "PURPOSE_HEADER"]
