"""One rule for text that members write (memos, request memos, profiles, later listings),
and one way to show untrusted text on a terminal or a page.

Why: a payee controls the memo of a payment request, and the payer's wallet shows it right
before asking "sign and send?". Control characters (CR, ESC and other C0/C1 bytes), line and
paragraph separators, format characters (bidi overrides, zero-width characters, BOM,
U+061C) let that text move the cursor, erase a line or reorder what is shown, so the payer
would read an amount that is not the one being signed. New text is refused (`check_user_text`);
text already stored (older data, or another server) is shown through `visible`, which turns
every such character into a visible escape.
"""
from __future__ import annotations

import unicodedata

from .errors import InvalidInput

# Unicode categories refused in user-written text: controls, format characters (bidi
# controls, zero-width characters, BOM, ALM), line and paragraph separators, unassigned
# and private-use code points, and surrogates.
REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"})
# The one exception: ZERO WIDTH JOINER between two emoji (family, profession and flag
# sequences people really write), never at either end or next to another format character.
_ZWJ = "\u200d"
# Variation selectors (FE0E/FE0F) are category Mn, not Cf: emoji presentation keeps working.
# Letters that render as nothing (Hangul fillers, category Lo): text that looks empty or
# spaced differently from what it holds.
INVISIBLE_LETTERS = frozenset("\u115f\u1160\u3164\uffa0")
# Combining marks stacked on one character can be drawn over the characters around it (over
# an amount next to the memo); real scripts need a few, never more than this in a row.
MAX_COMBINING_RUN = 4

MAX_MEMO_CHARS = 500


def _is_emoji_like(ch: str) -> bool:
    return unicodedata.category(ch) == "So" or 0x1F000 <= ord(ch) <= 0x1FAFF or ch in "\ufe0f"


def _hidden(ch: str) -> bool:
    return unicodedata.category(ch) in REFUSED_CATEGORIES or ch in INVISIBLE_LETTERS


def first_refused(text: str) -> tuple[int, str] | None:
    """(index, character) of the first character the text rule refuses, or None."""
    marks = 0
    for i, ch in enumerate(text):
        if unicodedata.category(ch) in ("Mn", "Me"):
            marks += 1
            if marks > MAX_COMBINING_RUN:
                return i, ch
            continue
        marks = 0
        if not _hidden(ch):
            continue
        if ch == _ZWJ and 0 < i < len(text) - 1 and _is_emoji_like(text[i - 1]) and _is_emoji_like(text[i + 1]):
            continue
        return i, ch
    return None


def check_user_text(value: object, *, field: str, max_chars: int, allow_newlines: bool = False) -> str:
    """Refuse text a member may not store; return it unchanged when it passes.
    `allow_newlines` permits LF (and only LF) in longer free text such as descriptions."""
    if not isinstance(value, str):
        raise InvalidInput(f"{field} must be text")
    if len(value) > max_chars:
        raise InvalidInput(f"{field} is longer than {max_chars} characters")
    probe = value.replace("\n", " ") if allow_newlines else value
    bad = first_refused(probe)
    if bad is not None:
        i, ch = bad
        if unicodedata.category(ch) in ("Mn", "Me"):
            raise InvalidInput(f"{field} stacks more than {MAX_COMBINING_RUN} combining marks on one "
                               f"character (position {i}); they can be drawn over the text around it")
        name = unicodedata.name(ch, "control character")
        raise InvalidInput(f"{field} contains U+{ord(ch):04X} ({name}) at position {i}; "
                           "control, format, separator and invisible characters are not allowed in text")
    return value


def check_memo(memo: object) -> str:
    return check_user_text(memo, field="memo", max_chars=MAX_MEMO_CHARS)


def visible(text: str | None) -> str:
    """Untrusted text made safe to print: every character the text rule refuses (and so any
    that could move a cursor, erase or reorder) is shown as an escape such as `\\x1b` or
    `\\u202e`, never sent as is. Backslashes are doubled so an escape cannot be forged."""
    if text is None:
        return ""
    out = []
    marks = 0
    for ch in text:
        marks = marks + 1 if unicodedata.category(ch) in ("Mn", "Me") else 0
        if ch == "\\":
            out.append("\\\\")
        elif _hidden(ch) or marks > MAX_COMBINING_RUN:
            o = ord(ch)
            out.append(f"\\x{o:02x}" if o < 0x100 else f"\\u{o:04x}" if o < 0x10000 else f"\\U{o:08x}")
        else:
            out.append(ch)
    return "".join(out)
