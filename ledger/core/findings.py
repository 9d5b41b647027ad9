"""One finding type: what every verifier (replay, `ayni verify`, reconciliation) reports.

A finding says where (seq, and account/currency when it concerns one), which check
(`code`), what the rules or the log imply (`expected`) and what was there (`found`).
Reporters differ in what they collect, not in what a fault looks like."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Finding:
    code: str  # the check that failed: "rules", "signature", "entry_hash", "anchor_root", ...
    seq: int | None
    expected: str
    found: str
    account: str | None = None
    currency: str | None = None
    detail: str = ""
    table: str | None = None  # a projection table (ayni verify's row checks), else None
    # Typed values behind `expected`/`found` where a reader needs numbers, not text (ayni verify
    # --json keeps its balance faults' integer fields): (key, value) pairs, merged into as_json.
    values: tuple = ()

    @property
    def check(self) -> str:
        """The name reconciliation reports use for `code` (its JSON key is "check")."""
        return self.code

    @property
    def problem(self) -> str:
        """What is wrong, in words: the detail, or the code when there is none."""
        return self.detail or self.code

    def as_dict(self) -> dict:
        d = {"check": self.code, "seq": self.seq, "expected": self.expected, "found": self.found,
             "account": self.account, "currency": self.currency, "detail": self.detail}
        if self.table is not None:
            d["table"] = self.table
        return d

    def as_json(self) -> dict:
        """Every key a reader of `ayni verify --json` has relied on: the finding's own fields,
        `code` and `problem`, and the typed values (e.g. integer balances) where it has them."""
        d = {**self.as_dict(), "code": self.code, "problem": self.problem}
        d.update(dict(self.values))
        return d

    # Read access by key too (f["seq"], f.get("table")): readers of `ayni verify` reports use both.
    def __getitem__(self, key: str):
        d = self.as_dict()
        d.setdefault("problem", self.problem)
        d.setdefault("code", self.code)
        return d[key]

    def get(self, key: str, default=None):
        try:
            value = self[key]
        except KeyError:
            return default
        return default if value is None else value

    def __str__(self) -> str:
        where = " ".join(x for x in (f"seq {self.seq}" if self.seq is not None else "", self.account or "",
                                     self.currency or "", self.table or "") if x)
        text = f"{self.code} at {where or '-'}: expected {self.expected}, found {self.found}"
        return text + (f" ({self.detail})" if self.detail else "")
