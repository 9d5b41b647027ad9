"""A sample community, built as a real one is: a genesis naming a treasurer, then every
account opened by an action the treasurer signs. The test suite, the benchmarks and the cost
measurement (ledger/costs) all build theirs here, so what is measured is what is tested.

    c = SampleCommunity(url)                 # a fresh ledger with a treasurer
    ana = c.member("ana")                    # a named member (its key kept in c.keys)
    keys = c.accounts(100, credit_limit=2**50)   # many unnamed accounts, in two batches
    subs = round_robin_transfers(c.domain, keys, 1000)   # signed, not yet posted
"""
from __future__ import annotations

from typing import Callable

from . import signing
from .community import new_genesis
from .core.typed_data import Domain, address_of_key
from .service import Ledger, Submission


class SampleCommunity:
    """A ledger with a treasurer and member keys."""

    def __init__(self, url: str, *, name: str = "Test coop", clock: Callable[[], int] | None = None):
        self.treasurer_key = signing.new_key()
        self.treasurer = address_of_key(self.treasurer_key)
        self.ledger = Ledger.open(url, **({"clock": clock} if clock else {}))
        self.ledger.initialise(new_genesis(name, self.treasurer))
        self.domain = self.ledger.genesis.domain
        self.keys: dict[str, bytes] = {}

    def member(self, name: str, role: str = "member") -> str:
        """Open an account for a new key known as `name`; its address."""
        key = signing.new_key()
        self.keys[name] = key
        self.ledger.submit(signing.open_account(self.treasurer_key, self.domain,
                                                account=address_of_key(key), role=role))
        return address_of_key(key)

    def accounts(self, n: int, *, role: str = "member", currency: str = "CRED",
                 credit_limit: int | None = None) -> list[bytes]:
        """Open `n` unnamed accounts in one batch (and, if given, raise their credit limit in
        `currency` so that no sampled payment is refused); their keys."""
        keys = [signing.new_key() for _ in range(n)]
        self.ledger.submit_many([signing.open_account(self.treasurer_key, self.domain, account=address_of_key(k),
                                                      role=role) for k in keys])
        if credit_limit is not None:
            self.ledger.submit_many([signing.set_limit(self.treasurer_key, self.domain, account=address_of_key(k),
                                                       currency=currency, credit_limit=credit_limit) for k in keys])
        return keys

    def addr(self, name: str) -> str:
        return address_of_key(self.keys[name])

    def pay(self, payer: str, payee: str, amount: int, currency: str = "HOUR", **kw) -> Submission:
        """A transfer signed by member `payer` (not yet posted)."""
        return signing.transfer(self.keys[payer], self.domain, payee=self.addr(payee),
                                currency=currency, amount=amount, **kw)

    def balance(self, name: str, currency: str = "HOUR") -> int:
        return self.ledger.positions(self.addr(name))[(self.addr(name), currency)].balance

    def dispose(self) -> None:
        self.ledger.engine.dispose()


def round_robin_transfers(domain: Domain, keys: list[bytes], n: int, *, offset: int = 0, currency: str = "CRED",
                          memo_every: int = 0) -> list[Submission]:
    """`n` signed transfers among `keys`, spread evenly (payer i, payee 7i+1), amounts 1..500;
    every `memo_every`-th one carries a memo (0: none)."""
    out = []
    for i in range(n):
        payer = keys[(i + offset) % len(keys)]
        payee = keys[(i * 7 + offset + 1) % len(keys)]
        if payer == payee:
            payee = keys[(i + offset + 1) % len(keys)]
        memo = "groceries" if memo_every and i % memo_every == 0 else None
        out.append(signing.transfer(payer, domain, payee=address_of_key(payee), currency=currency,
                                    amount=1 + i % 500, memo=memo))
    return out
