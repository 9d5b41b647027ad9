import pytest
from hypothesis import given, strategies as st

from ledger.core.amounts import CRED, HOUR, MAX_AMOUNT, Currency, check_amount, format_amount, parse_amount
from ledger.core.errors import InvalidAmount, InvalidInput


@pytest.mark.parametrize("text,minutes", [
    ("1h30m", 90), ("2h", 120), ("45m", 45), ("1.5", 90), ("0.25", 15), ("1h05m", 65), ("90m", 90),
    (" 3 ", 180), ("1.50", 90),
])
def test_time_amounts_parse_to_minutes(text, minutes):
    assert parse_amount(HOUR, text) == minutes


@pytest.mark.parametrize("text,cents", [("1.5", 150), ("12", 1200), ("0.01", 1), ("3.10", 310), ("2.500", 250)])
def test_decimal_amounts_parse_to_minor_units(text, cents):
    assert parse_amount(CRED, text) == cents


@pytest.mark.parametrize("currency,text,fragment", [
    (CRED, "1.555", "more than 2 decimals"),
    (CRED, "-1", "negative"),
    (CRED, "0", "positive"),
    (CRED, "1e3", "not a number"),
    (CRED, "1,5", "not a number"),
    (CRED, "", "not a number"),
    (CRED, "99999999999999999999", "exceeds the maximum"),
    (HOUR, "1.01", "whole number of minutes"),
    (HOUR, "1h30", "not a number"),
    (HOUR, "h", "not a duration"),
    (HOUR, "-1h", "negative"),
])
def test_bad_amounts_get_clear_errors(currency, text, fragment):
    with pytest.raises(InvalidAmount) as exc:
        parse_amount(currency, text)
    assert fragment in exc.value.message
    assert exc.value.code == "invalid_amount"


def test_zero_allowed_only_when_asked():
    assert parse_amount(CRED, "0", allow_zero=True) == 0


@pytest.mark.parametrize("value", [1.5, True, "5", None, -1, 0, MAX_AMOUNT + 1])
def test_internal_amounts_are_positive_bounded_integers(value):
    with pytest.raises(InvalidAmount):
        check_amount(value)


def test_formatting_is_exact():
    assert format_amount(HOUR, 90) == "1h30m"
    assert format_amount(HOUR, -600) == "-10h"
    assert format_amount(HOUR, 5) == "5m"
    assert format_amount(CRED, -5) == "-0.05"
    assert format_amount(CRED, 123456) == "1234.56"


def test_currency_definitions_are_validated():
    with pytest.raises(InvalidInput):
        Currency("hour", "x", "time")
    with pytest.raises(InvalidInput):
        Currency("HOUR", "x", "time", 2)


@given(st.integers(min_value=1, max_value=MAX_AMOUNT), st.sampled_from([HOUR, CRED, Currency("PTS", "p", "decimal", 0)]))
def test_format_then_parse_round_trips(minor, currency):
    assert parse_amount(currency, format_amount(currency, minor)) == minor
