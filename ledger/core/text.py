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

MAX_MEMO_CHARS = 500


def _is_emoji_like(ch: str) -> bool:
    return unicodedata.category(ch) == "So" or 0x1F000 <= ord(ch) <= 0x1FAFF or ch in "\ufe0f"


def first_refused(text: str) -> tuple[int, str] | None:
    """(index, character) of the first character the text rule refuses, or None."""
    for i, ch in enumerate(text):
        if unicodedata.category(ch) not in REFUSED_CATEGORIES:
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
        name = unicodedata.name(ch, "control character")
        raise InvalidInput(f"{field} contains U+{ord(ch):04X} ({name}) at position {i}; "
                           "control, format and separator characters are not allowed in text")
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
    for ch in text:
        if ch == "\\":
            out.append("\\\\")
        elif unicodedata.category(ch) in REFUSED_CATEGORIES:
            o = ord(ch)
            out.append(f"\\x{o:02x}" if o < 0x100 else f"\\u{o:04x}" if o < 0x10000 else f"\\U{o:08x}")
        else:
            out.append(ch)
    return "".join(out)
