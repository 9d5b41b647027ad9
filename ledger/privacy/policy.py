"""The data-use declaration (policy.json, schema in docs/data-policy.schema.json).

The shipped policy is package data; a cooperative may replace it with its own file through
$AYNI_DATA_POLICY. Either way it is checked on load: every item names a declared category,
every purpose names declared categories, and the retention of memos is a number of days
(the retention job reads it)."""
from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..core import errors as E

DEFAULT_PATH = Path(__file__).with_name("policy.json")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Category(_Model):
    id: str = Field(pattern=r"^[a-z_]{1,32}$")
    personal: bool
    description: str


class Purpose(_Model):
    id: str = Field(pattern=r"^[a-z_]{1,40}$")
    essential: bool
    roles: list[str]
    categories: list[str]
    description: str


class Retention(_Model):
    kind: Literal["ledger_lifetime", "period", "until_account_closed", "until_expired", "until_revoked"]
    days: int | None = Field(None, ge=1)
    erasedBy: str | None = None
    why: str | None = None


class Item(_Model):
    id: str
    category: str
    essential: bool
    purposes: list[str]
    columns: list[str]
    visibleTo: list[str]
    retention: Retention


class NotKept(_Model):
    item: str
    why: str


class Statistics(_Model):
    minimumGroupSize: int = Field(ge=2)
    perPersonFigures: Literal[False]
    description: str


class Policy(_Model):
    schema_: str = Field(alias="$schema")
    policyVersion: str = Field(pattern=r"^\d+\.\d+\.\d+$")
    effectiveFrom: str
    summary: str
    categories: list[Category]
    purposes: list[Purpose]
    items: list[Item]
    notKept: list[NotKept]
    statistics: Statistics

    # -- lookups ---------------------------------------------------------------------
    def purpose(self, pid: str) -> Purpose | None:
        return next((p for p in self.purposes if p.id == pid), None)

    def category_ids(self) -> set[str]:
        return {c.id for c in self.categories}

    def declared_columns(self) -> set[str]:
        return {col for item in self.items for col in item.columns}

    def retention_days(self, item_id: str) -> int:
        item = next(i for i in self.items if i.id == item_id)
        if item.retention.kind != "period" or not item.retention.days:
            raise E.InvalidInput(f"the policy gives item {item_id!r} no retention period in days")
        return item.retention.days

    def essential_for(self, role: str, category: str) -> list[str]:
        """Essential purposes under which `role` may read `category` of another member."""
        return [p.id for p in self.purposes if p.essential and category in p.categories
                and (role in p.roles or "anyone" in p.roles)]

    def grantable(self) -> list[Purpose]:
        return [p for p in self.purposes if not p.essential]

    def as_json(self) -> dict:
        return self.model_dump(by_alias=True, exclude_none=True)

    def check(self) -> "Policy":
        cats = self.category_ids()
        problems = [f"item {i.id} has undeclared category {i.category}" for i in self.items if i.category not in cats]
        problems += [f"purpose {p.id} names undeclared category {c}" for p in self.purposes
                     for c in p.categories if c not in cats]
        pids = {p.id for p in self.purposes}
        problems += [f"item {i.id} names undeclared purpose {u}" for i in self.items for u in i.purposes if u not in pids]
        cols = [c for i in self.items for c in i.columns]
        problems += [f"column {c} is declared twice" for c in sorted({c for c in cols if cols.count(c) > 1})]
        problems += [f"item {i.id} has a period retention without days" for i in self.items
                     if i.retention.kind == "period" and not i.retention.days]
        if problems:
            raise E.InvalidInput("data policy is inconsistent: " + "; ".join(problems))
        return self


def load_policy(path: str | os.PathLike | None = None) -> Policy:
    """The policy at `path`, else $AYNI_DATA_POLICY, else the shipped one."""
    return _load(str(path or os.environ.get("AYNI_DATA_POLICY") or DEFAULT_PATH))


@lru_cache(maxsize=8)
def _load(path: str) -> Policy:
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
        return Policy.model_validate(doc).check()
    except OSError as exc:
        raise E.InvalidInput(f"cannot read the data policy {path}: {exc.strerror}") from None
    except ValueError as exc:  # JSON or pydantic
        first = exc.errors()[0] if isinstance(exc, ValidationError) else None
        where = ".".join(map(str, first["loc"])) + ": " + first["msg"] if first else str(exc)
        raise E.InvalidInput(f"data policy {path} is invalid: {where}") from None


def undeclared_columns(engine, policy: Policy) -> tuple[set[str], set[str]]:
    """(columns in the database the policy does not declare, declared columns the database
    lacks), as "table.column". Reads the live schema, not the code's idea of it."""
    from sqlalchemy import inspect

    from ..store.exchange_tables import is_search_object  # SQLite's FTS5 tables copy declared columns
    insp = inspect(engine)
    actual = {f"{t}.{c['name']}" for t in insp.get_table_names() if not is_search_object(t)
              for c in insp.get_columns(t)}
    declared = policy.declared_columns()
    return actual - declared, declared - actual
