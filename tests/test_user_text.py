"""Issue 13 defect 1, service side: the one text rule (ledger.core.text) for every field a
member writes: transfer memos, payment-request memos, display names and contacts."""
import pytest

from ledger import signing
from ledger.core import errors as E
from ledger.privacy import profiles
from ledger.requests import PaymentRequests

# CR + "erase line" + a fake amount: the payer's terminal would show "5m" before "sign and send?"
SPOOF = "lunch\r\x1b[2K  5m HOUR to {payee}, memo: lunch"
REFUSED = ["\r", "\x1b", "\x07", "\x85", "\x9b", "\u2028", "\u2029", "\u200b", "\u200c", "\ufeff", "\u061c",
           "\u202e", "\u2066", "\u3164", "\u115f", "\uffa0"]


@pytest.fixture
def coop(community):
    c = community
    c.member("ana"), c.member("shop", role="shop")
    c.requests = PaymentRequests(c.ledger)
    return c


def test_the_spoofing_request_memo_is_refused_and_nothing_is_written(coop):
    c = coop
    snap = c.snapshot()
    with pytest.raises(E.InvalidInput) as exc:
        c.requests.create(payee=c.addr("shop"), payer=c.addr("ana"), currency="HOUR", amount=600,
                          memo=SPOOF.format(payee=c.addr("shop")), expires_in_s=600)
    assert "U+000D" in exc.value.message and exc.value.code == "invalid_input"
    assert c.snapshot() == snap


def test_the_spoofing_transfer_memo_is_refused_and_nothing_is_written(coop):
    c = coop
    snap = c.snapshot()
    with pytest.raises(E.InvalidInput) as exc:
        c.ledger.submit(c.pay("ana", "shop", 600, memo=SPOOF.format(payee=c.addr("shop"))))
    assert "U+000D" in exc.value.message
    assert c.snapshot() == snap


@pytest.mark.parametrize("char", REFUSED)
def test_every_field_refuses_controls_separators_and_invisible_characters(coop, char):
    c = coop
    text = f"five{char}hours"
    snap = c.snapshot()
    with pytest.raises(E.InvalidInput, match=f"U\\+{ord(char):04X}"):
        c.ledger.submit(c.pay("ana", "shop", 5, memo=text))
    with pytest.raises(E.InvalidInput, match=f"U\\+{ord(char):04X}"):
        c.requests.create(payee=c.addr("shop"), payer=c.addr("ana"), currency="HOUR", amount=5, memo=text,
                          expires_in_s=600)
    for field in ("display_name", "contact"):
        with pytest.raises(E.InvalidInput, match=f"U\\+{ord(char):04X}"):
            c.ledger.set_profile(c.addr("ana"), **{"display_name": None, "contact": None, field: text})
    assert c.snapshot() == snap


def test_profiles_are_validated_by_the_service(coop):
    c = coop
    ana = c.addr("ana")
    for bad in (dict(display_name="x" * 121), dict(contact="y" * 241), dict(display_name=7),
                dict(display_name=b"Ana"), dict(contact="a\nb")):
        with pytest.raises(E.InvalidInput):
            c.ledger.set_profile(ana, **{"display_name": None, "contact": None, **bad})
    assert profiles.get(c.ledger, ana)["displayName"] is None
    # what people really write: accents, other scripts, emoji with a joiner, the edges of the limits
    c.ledger.set_profile(ana, display_name="Ana María 👩‍🌾 شكرا", contact="ana@example.org")
    assert profiles.get(c.ledger, ana)["displayName"] == "Ana María 👩‍🌾 شكرا"
    c.ledger.set_profile(ana, display_name="x" * 120, contact="y" * 240)
    c.ledger.set_profile(ana, display_name="", contact=None)  # empty clears
    assert profiles.get(c.ledger, ana)["displayName"] is None
    with pytest.raises(E.UnknownAccount):
        c.ledger.set_profile("0x" + "12" * 20, display_name="Nobody")


def test_ordinary_memos_still_pass(coop):
    c = coop
    ok = "refund 5.00 — gracias, شكرا 🙂"
    c.ledger.submit(c.pay("ana", "shop", 5, "CRED", memo=ok))
    r = c.requests.create(payee=c.addr("shop"), payer=c.addr("ana"), currency="HOUR", amount=5, memo=ok,
                          expires_in_s=600)
    assert c.requests.get(r.id).memo == ok


def test_stacked_combining_marks_are_refused_but_real_scripts_pass(coop):
    """Dozens of marks on one letter draw over the text around it (over the amount beside a memo)."""
    c = coop
    with pytest.raises(E.InvalidInput, match="combining marks"):
        c.ledger.submit(c.pay("ana", "shop", 5, memo="5" + "\u0336" * 40))
    for ok in ("Tiếng Việt", "caf\u00e9", "e\u0301", "नमस्ते", "ภาษาไทย"):
        c.ledger.submit(c.pay("ana", "shop", 1, currency="CRED", memo=ok))
