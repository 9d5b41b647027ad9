"""Currencies and amounts. Money is an integer count of minor units, always.

A decimal currency (CRED, 2 decimals) counts hundredths; a time currency (HOUR)
counts minutes, because care work is booked in minutes ("1h20m" is exact in
minutes and not in hundredths of an hour).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import InvalidAmount, InvalidInput

# Largest amount, limit or ceiling accepted: 2**53 - 1 is exact in JavaScript
# numbers (wallets, the web app) and leaves int64 balances far from overflow.
MAX_AMOUNT = 2**53 - 1
# Largest magnitude a stored balance may reach (BIGINT column).
MAX_BALANCE = 2**63 - 1

CURRENCY_CODE = re.compile(r"[A-Z][A-Z0-9]{1,11}", re.ASCII)
_DECIMAL = re.compile(r"([0-9]{1,20})(?:\.([0-9]{1,30}))?", re.ASCII)
_DURATION = re.compile(r"(?:([0-9]{1,15})h)?(?:([0-9]{1,15})m)?", re.ASCII)


@dataclass(frozen=True, slots=True)
class Currency:
    code: str
    name: str
    style: str  # "decimal" | "time"
    decimals: int = 0  # decimal style only

    def __post_init__(self) -> None:
        if not CURRENCY_CODE.fullmatch(self.code):
            raise InvalidInput(f"currency code {self.code!r} must be 2-12 upper-case letters/digits")
        if self.style not in ("decimal", "time"):
            raise InvalidInput(f"currency style {self.style!r} must be 'decimal' or 'time'")
        if self.style == "time" and self.decimals != 0:
            raise InvalidInput("a time currency counts whole minutes: decimals must be 0")
        if not 0 <= self.decimals <= 8:
            raise InvalidInput("decimals must be between 0 and 8")

    @property
    def scale(self) -> int:
        """Minor units per major unit (60 minutes per hour, 10**decimals otherwise)."""
        return 60 if self.style == "time" else 10**self.decimals

    @property
    def minor_unit(self) -> str:
        return "minute" if self.style == "time" else f"1/{self.scale}"

    def parse(self, text: str, *, allow_zero: bool = False) -> int:
        return parse_amount(self, text, allow_zero=allow_zero)

    def format(self, minor: int) -> str:
        return format_amount(self, minor)

    def as_dict(self) -> dict:
        return {"code": self.code, "name": self.name, "style": self.style, "decimals": self.decimals}


HOUR = Currency("HOUR", "care hours", "time")
CRED = Currency("CRED", "community credit", "decimal", 2)


def check_amount(value: object, *, what: str = "amount", allow_zero: bool = False) -> int:
    """Validate an integer amount of minor units (the only form money takes inside)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidAmount(f"{what} must be an integer number of minor units, got {type(value).__name__}")
    if value < 0 or (value == 0 and not allow_zero):
        raise InvalidAmount(f"{what} must be {'>= 0' if allow_zero else 'positive'}, got {value}")
    if value > MAX_AMOUNT:
        raise InvalidAmount(f"{what} {value} exceeds the maximum of {MAX_AMOUNT} minor units")
    return value


def parse_amount(currency: Currency, text: str, *, allow_zero: bool = False) -> int:
    """Parse what a person types ("1.5", "12", and for time "1h30m", "45m") into minor units."""
    if not isinstance(text, str):
        raise InvalidAmount(f"amount must be text, got {type(text).__name__}")
    raw = text.strip().replace("_", "")
    if raw.startswith("-"):
        raise InvalidAmount(f"amount {text!r} is negative: amounts are always positive")
    if currency.style == "time" and raw and raw[-1] in "hm":
        m = _DURATION.fullmatch(raw)
        if not m or (m.group(1) is None and m.group(2) is None):
            raise InvalidAmount(f"amount {text!r} is not a duration like '1h30m', '2h' or '45m'")
        minutes = int(m.group(1) or 0) * 60 + int(m.group(2) or 0)
        return check_amount(minutes, allow_zero=allow_zero)
    m = _DECIMAL.fullmatch(raw)
    if not m:
        hint = " or a duration like '1h30m'" if currency.style == "time" else ""
        raise InvalidAmount(f"amount {text!r} is not a number like '1.5'{hint}")
    whole, frac = m.group(1), m.group(2) or ""
    if currency.style == "time":
        # Exact rational arithmetic: hours with a fraction must come to whole minutes.
        denominator = 10 ** len(frac)
        numerator = (int(whole) * denominator + int(frac or 0)) * 60
        if numerator % denominator:
            raise InvalidAmount(f"{text!r} hours is not a whole number of minutes")
        return check_amount(numerator // denominator, allow_zero=allow_zero)
    if len(frac) > currency.decimals:
        frac_stripped = frac.rstrip("0")
        if len(frac_stripped) > currency.decimals:
            raise InvalidAmount(
                f"amount {text!r} has more than {currency.decimals} decimals, the precision of {currency.code}"
            )
        frac = frac_stripped
    minor = int(whole) * currency.scale + int(frac.ljust(currency.decimals, "0") or 0)
    return check_amount(minor, allow_zero=allow_zero)


def format_amount(currency: Currency, minor: int) -> str:
    """Render minor units for people: '-1h30m', '12.50'. Exact, never via float."""
    sign = "-" if minor < 0 else ""
    n = abs(minor)
    if currency.style == "time":
        hours, minutes = divmod(n, 60)
        if hours and minutes:
            return f"{sign}{hours}h{minutes:02d}m"
        if hours:
            return f"{sign}{hours}h"
        return f"{sign}{minutes}m"
    if currency.decimals == 0:
        return f"{sign}{n}"
    whole, frac = divmod(n, currency.scale)
    return f"{sign}{whole}.{frac:0{currency.decimals}d}"
