"""Price scenarios for the cost report: loaded from a JSON file (the shipped `prices.json` or
one given with --prices), validated strictly, with a one-line PricesError for anything wrong.

Every number that is a price is a *dated value*: {"value": x, "as_of": "YYYY-MM-DD", "source": "..."},
so a report always says where and when each figure came from."""
from __future__ import annotations

import datetime as dt
import json
import math
from dataclasses import dataclass, replace
from pathlib import Path

SCHEMA = "ayni.cost-prices/2"
MAX_VALUE = 1e12  # no price or quantity in this file comes near; larger means a typo (and inf results)
DEFAULT_FILE = Path(__file__).with_name("prices.json")
KINDS = ("ethereum-l1", "l2", "sidechain")


class PricesError(ValueError):
    """The price file is missing, not JSON, or does not follow the schema."""


@dataclass(frozen=True)
class Dated:
    value: float
    as_of: str
    source: str

    def to_json(self) -> dict:
        return {"value": self.value, "as_of": self.as_of, "source": self.source}


@dataclass(frozen=True)
class Scenario:
    name: str
    label: str
    kind: str
    native: str
    gas_price_gwei: Dated
    native_usd: Dated  # price of the token gas is paid in (ETH's comes from eth_usd)
    l1_data_fee_eth_per_byte: Dated | None = None  # a rollup's L1 data fee, per byte of signed tx

    def usd_per_gas(self) -> float:
        return self.gas_price_gwei.value * 1e-9 * self.native_usd.value

    def data_fee_usd(self, tx_bytes: float) -> float:
        """A rollup's L1 data fee for a transaction of `tx_bytes` signed bytes (rollups here pay
        gas in ETH, so native_usd is the ETH price, --eth-usd included)."""
        fee = self.l1_data_fee_eth_per_byte
        return tx_bytes * fee.value * self.native_usd.value if fee else 0.0

    def tx_usd(self, gas: float, tx_bytes: float = 0) -> float:
        """USD for one transaction using `gas` and `tx_bytes` signed bytes: execution plus, on a
        rollup, the L1 data fee."""
        return gas * self.usd_per_gas() + self.data_fee_usd(tx_bytes)


@dataclass(frozen=True)
class SmallVM:
    """The cheapest honest host: one small VM (~2 vCPU, 4 GB) priced in EUR, for Ayni with the
    embedded SQLite or a self-hosted PostgreSQL on the same machine."""
    label: str
    vcpus: int
    ram_gib: float
    disk_gib: float
    eur: Dated

    def to_json(self, eur_usd: Dated) -> dict:
        return {"label": self.label, "vcpus": self.vcpus, "ram_gib": self.ram_gib, "disk_gib": self.disk_gib,
                "eur_per_month": self.eur.to_json(), "usd_per_month": self.eur.value * eur_usd.value}


@dataclass(frozen=True)
class Hosting:
    vm_label: str
    vm_vcpus: int
    vm_usd: Dated
    pg_label: str
    pg_storage_gib: float
    pg_usd: Dated
    cpu_utilisation: Dated
    pg_extra_storage_usd_per_gib_month: Dated
    small_vm: SmallVM
    eur_usd: Dated

    @property
    def small_vm_usd(self) -> float:
        return self.small_vm.eur.value * self.eur_usd.value


@dataclass(frozen=True)
class Prices:
    path: str
    eth_usd: Dated
    scenarios: tuple[Scenario, ...]
    hosting: Hosting

    def scenario(self, name: str) -> Scenario:
        for s in self.scenarios:
            if s.name == name:
                return s
        raise PricesError(f"unknown price scenario {name!r} (known: {', '.join(s.name for s in self.scenarios)})")

    def to_json(self) -> dict:
        h = self.hosting
        return {
            "file": self.path, "eth_usd": self.eth_usd.to_json(),
            "scenarios": [{"name": s.name, "label": s.label, "kind": s.kind, "native": s.native,
                           "gas_price_gwei": s.gas_price_gwei.to_json(), "native_usd": s.native_usd.to_json(),
                           "l1_data_fee_eth_per_byte": s.l1_data_fee_eth_per_byte.to_json()
                           if s.l1_data_fee_eth_per_byte else None} for s in self.scenarios],
            "hosting": {"vm": {"label": h.vm_label, "vcpus": h.vm_vcpus, "usd_per_month": h.vm_usd.to_json()},
                        "managed_postgres": {"label": h.pg_label, "storage_gib": h.pg_storage_gib,
                                             "usd_per_month": h.pg_usd.to_json(),
                                             "extra_storage_usd_per_gib_month":
                                                 h.pg_extra_storage_usd_per_gib_month.to_json()},
                        "cpu_utilisation": h.cpu_utilisation.to_json(),
                        "small_vm": h.small_vm.to_json(h.eur_usd)},
            "eur_usd": h.eur_usd.to_json(),
        }


# ------------------------------------------------------------------ validation helpers

def _obj(value, where: str) -> dict:
    if not isinstance(value, dict):
        raise PricesError(f"{where} must be an object")
    return value


def _field(obj: dict, key: str, where: str):
    if key not in obj:
        raise PricesError(f"{where}.{key} is missing")
    return obj[key]


def _text(obj: dict, key: str, where: str) -> str:
    v = _field(obj, key, where)
    if not isinstance(v, str) or not v.strip():
        raise PricesError(f"{where}.{key} must be a non-empty string")
    return v


def _number(v, where: str, *, positive: bool = False) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
        raise PricesError(f"{where} must be a non-negative number, got {v!r}")
    if positive and v == 0:
        raise PricesError(f"{where} must be greater than 0")
    if v > MAX_VALUE:
        raise PricesError(f"{where} is implausibly large ({v:g} > {MAX_VALUE:g})")
    return float(v)


def _dated(obj: dict, key: str, where: str, *, positive: bool = True) -> Dated:
    d = _obj(_field(obj, key, where), f"{where}.{key}")
    w = f"{where}.{key}"
    value = _number(_field(d, "value", w), f"{w}.value", positive=positive)
    as_of = _text(d, "as_of", w)
    try:
        dt.date.fromisoformat(as_of)
    except ValueError:
        raise PricesError(f"{w}.as_of must be a date YYYY-MM-DD, got {as_of!r}") from None
    source = _text(d, "source", w)
    extra = set(d) - {"value", "as_of", "source"}
    if extra:
        raise PricesError(f"{w} has unknown field(s) {sorted(extra)}")
    return Dated(value, as_of, source)


def parse(data: object, path: str = "<prices>") -> Prices:
    root = _obj(data, "the price file")
    if root.get("schema") != SCHEMA:
        hint = (" (version 1 charged a flat l1_data_fee_usd_per_tx; version 2 has l1_data_fee_eth_per_byte "
                "and hosting.managed_postgres.extra_storage_usd_per_gib_month)"
                if root.get("schema") == "ayni.cost-prices/1" else "")
        raise PricesError(f"schema must be {SCHEMA!r}, got {root.get('schema')!r}{hint}")
    if root.get("currency") != "USD":
        raise PricesError("currency must be \"USD\" (all prices are in US dollars)")
    eth = _dated(root, "eth_usd", "")
    raw = _field(root, "scenarios", "")
    if not isinstance(raw, list) or not raw:
        raise PricesError(".scenarios must be a non-empty list")
    scenarios: list[Scenario] = []
    for i, s in enumerate(raw):
        w = f".scenarios[{i}]"
        s = _obj(s, w)
        name = _text(s, "name", w)
        if any(x.name == name for x in scenarios):
            raise PricesError(f"{w}.name {name!r} appears twice")
        kind = _text(s, "kind", w)
        if kind not in KINDS:
            raise PricesError(f"{w}.kind must be one of {', '.join(KINDS)}, got {kind!r}")
        native = _text(s, "native", w)
        if native == "ETH":
            if "native_usd" in s:
                raise PricesError(f"{w}: an ETH scenario takes its price from eth_usd, not native_usd")
            native_usd = eth
        else:
            native_usd = _dated(s, "native_usd", w)
        if "l1_data_fee_usd_per_tx" in s:
            raise PricesError(f"{w}.l1_data_fee_usd_per_tx is gone: give l1_data_fee_eth_per_byte")
        fee = _dated(s, "l1_data_fee_eth_per_byte", w, positive=False) if "l1_data_fee_eth_per_byte" in s else None
        if fee is not None and native != "ETH":
            raise PricesError(f"{w}.l1_data_fee_eth_per_byte needs a scenario paid in ETH")
        scenarios.append(Scenario(name, _text(s, "label", w), kind, native,
                                  _dated(s, "gas_price_gwei", w), native_usd, fee))
    h = _obj(_field(root, "hosting", ""), ".hosting")
    vm = _obj(_field(h, "vm", ".hosting"), ".hosting.vm")
    pg = _obj(_field(h, "managed_postgres", ".hosting"), ".hosting.managed_postgres")
    vcpus = _field(vm, "vcpus", ".hosting.vm")
    if isinstance(vcpus, bool) or not isinstance(vcpus, int) or vcpus < 1:
        raise PricesError(f".hosting.vm.vcpus must be a positive integer, got {vcpus!r}")
    small = _obj(_field(h, "small_vm", ".hosting"), ".hosting.small_vm")
    small_vcpus = _field(small, "vcpus", ".hosting.small_vm")
    if isinstance(small_vcpus, bool) or not isinstance(small_vcpus, int) or small_vcpus < 1:
        raise PricesError(f".hosting.small_vm.vcpus must be a positive integer, got {small_vcpus!r}")
    small_vm = SmallVM(_text(small, "label", ".hosting.small_vm"), small_vcpus,
                       _number(_field(small, "ram_gib", ".hosting.small_vm"), ".hosting.small_vm.ram_gib", positive=True),
                       _number(_field(small, "disk_gib", ".hosting.small_vm"), ".hosting.small_vm.disk_gib",
                               positive=True),
                       _dated(small, "eur_per_month", ".hosting.small_vm"))
    util = _dated(h, "cpu_utilisation", ".hosting")
    if util.value > 1:
        raise PricesError(".hosting.cpu_utilisation.value must be a fraction between 0 and 1")
    hosting = Hosting(
        vm_label=_text(vm, "label", ".hosting.vm"), vm_vcpus=vcpus, vm_usd=_dated(vm, "usd_per_month", ".hosting.vm"),
        pg_label=_text(pg, "label", ".hosting.managed_postgres"),
        pg_storage_gib=_number(_field(pg, "storage_gib", ".hosting.managed_postgres"),
                               ".hosting.managed_postgres.storage_gib", positive=True),
        pg_usd=_dated(pg, "usd_per_month", ".hosting.managed_postgres"), cpu_utilisation=util,
        pg_extra_storage_usd_per_gib_month=_dated(pg, "extra_storage_usd_per_gib_month",
                                                  ".hosting.managed_postgres", positive=False),
        small_vm=small_vm, eur_usd=_dated(root, "eur_usd", ""))
    if "eur_per_usd" in root:
        # `ayni anchor --estimate` reads EUR per USD (the inverse of eur_usd, USD per EUR). Two
        # spellings of one rate: refuse a file where they disagree (one inverted by analogy).
        inverse = _dated(root, "eur_per_usd", "")
        if abs(inverse.value * hosting.eur_usd.value - 1) > 0.01:
            raise PricesError(f"eur_per_usd ({inverse.value:g} EUR per USD) must be 1 / eur_usd "
                              f"({hosting.eur_usd.value:g} USD per EUR) = {1 / hosting.eur_usd.value:.4f}: "
                              "one of them is inverted")
    return Prices(path, eth, tuple(scenarios), hosting)


MAX_FILE_CHARS = 1_000_000  # the shipped file is ~6 KB
MAX_DEPTH = 16              # the schema nests 4 levels


def _too_deep(text: str, limit: int) -> bool:
    """Does the JSON text nest arrays/objects deeper than `limit` (brackets in strings ignored)?"""
    depth, in_string, escaped = 0, False, False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > limit:
                return True
        elif ch in "]}":
            depth -= 1
    return False


def load(path: str | Path | None = None) -> Prices:
    p = Path(path) if path is not None else DEFAULT_FILE
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise PricesError(f"cannot read price file {p}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise PricesError(f"price file {p} is not UTF-8 text (byte {exc.start})") from None
    if len(text) > MAX_FILE_CHARS:
        raise PricesError(f"price file {p} is too large to be a price file ({len(text):,} characters)")
    # checked before parsing: with py-evm imported (it raises the recursion limit) a deep
    # document can crash the interpreter instead of raising RecursionError
    if _too_deep(text, MAX_DEPTH):
        raise PricesError(f"price file {p} is nested too deeply to be a price file (over {MAX_DEPTH} levels)")
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise PricesError(f"price file {p} is not valid JSON: {exc}") from None
    except RecursionError:
        raise PricesError(f"price file {p} is nested too deeply to be a price file") from None
    try:
        return parse(data, str(p))
    except PricesError as exc:
        raise PricesError(f"price file {p}: {exc}") from None


def _override(value: float, what: str) -> Dated:
    return Dated(_number(value, what, positive=True), dt.date.today().isoformat(), "command-line override")


def with_overrides(prices: Prices, *, eth_usd: float | None = None, gas_price_gwei: float | None = None,
                   vm_usd: float | None = None, postgres_usd: float | None = None,
                   only: list[str] | None = None, small_vm_eur: float | None = None) -> Prices:
    """Apply command-line overrides. `gas_price_gwei` replaces every Ethereum L1 scenario with one
    at that price; `eth_usd` reprices every ETH scenario; `only` keeps the named scenarios."""
    eth = _override(eth_usd, "--eth-usd") if eth_usd is not None else prices.eth_usd
    scenarios = [replace(s, native_usd=eth) if s.native == "ETH" else s for s in prices.scenarios]
    if gas_price_gwei is not None:
        g = _override(gas_price_gwei, "--gas-price-gwei")
        first_l1 = next((i for i, s in enumerate(scenarios) if s.kind == "ethereum-l1"), 0)
        custom = Scenario("l1-custom", f"Ethereum L1 at {g.value:g} gwei (override)", "ethereum-l1", "ETH", g, eth)
        scenarios = [s for s in scenarios if s.kind != "ethereum-l1"]
        scenarios.insert(min(first_l1, len(scenarios)), custom)
    if only:
        names = {s.name for s in scenarios}
        unknown = [n for n in only if n not in names]
        if unknown:
            raise PricesError(f"unknown price scenario(s) {', '.join(unknown)} (known: {', '.join(sorted(names))})")
        scenarios = [s for s in scenarios if s.name in only]
    h = prices.hosting
    if vm_usd is not None:
        h = replace(h, vm_usd=_override(vm_usd, "--vm-usd"))
    if postgres_usd is not None:
        h = replace(h, pg_usd=_override(postgres_usd, "--postgres-usd"))
    if small_vm_eur is not None:
        h = replace(h, small_vm=replace(h.small_vm, eur=_override(small_vm_eur, "--small-vm-eur")))
    return replace(prices, eth_usd=eth, scenarios=tuple(scenarios), hosting=h)
