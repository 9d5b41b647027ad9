"""One rule for text that members write (memos, request memos, profiles, later listings),
and one way to show untrusted text on a terminal or a page.

Why: a payee controls the memo of a payment request, and the payer's wallet shows it right
before asking "sign and send?". Control characters (CR, ESC and other C0/C1 bytes), line and
paragraph separators, format characters (bidi overrides, zero-width characters, BOM,
U+061C) let that text move the cursor, erase a line or reorder what is shown, so the payer
would read an amount that is not the one being signed. Characters that draw nothing (Unicode's
default-ignorable code points, the braille blank, Hangul fillers) make text look empty, or hide
what it holds. New text is refused (`check_user_text`); text already stored (older data, or
another server) is shown through `visible`, which turns every such character into a visible
escape. `has_visible` tells whether a required field (a title, a name) shows anything at all.
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
# Default_Ignorable_Code_Point, Unicode 14.0 (the version of Python 3.11's unicodedata),
# copied from DerivedCoreProperties-14.0.0.txt: code points a renderer draws as nothing.
# Most are Cf/Cn and refused above anyway; this adds the ones that are not: COMBINING
# GRAPHEME JOINER (Mn), Hangul fillers (Lo), Khmer inherent vowels and Mongolian free
# variation selectors (Mn), variation selectors (Mn). web/src/text.js holds the same list
# (tests/test_user_text.py checks they are equal). 4174 code points.
DEFAULT_IGNORABLE = (
    (0x00AD, 0x00AD), (0x034F, 0x034F), (0x061C, 0x061C), (0x115F, 0x1160), (0x17B4, 0x17B5),
    (0x180B, 0x180D), (0x180E, 0x180E), (0x180F, 0x180F), (0x200B, 0x200F), (0x202A, 0x202E),
    (0x2060, 0x2064), (0x2065, 0x2065), (0x2066, 0x206F), (0x3164, 0x3164), (0xFE00, 0xFE0F),
    (0xFEFF, 0xFEFF), (0xFFA0, 0xFFA0), (0xFFF0, 0xFFF8), (0x1BCA0, 0x1BCA3), (0x1D173, 0x1D17A),
    (0xE0000, 0xE0000), (0xE0001, 0xE0001), (0xE0002, 0xE001F), (0xE0020, 0xE007F), (0xE0080, 0xE00FF),
    (0xE0100, 0xE01EF), (0xE01F0, 0xE0FFF),
)
# Assigned, not default-ignorable, yet drawn blank by common fonts (a title of five U+2800
# looks empty): BRAILLE PATTERN BLANK, MUSICAL SYMBOL NULL NOTEHEAD, KHITAN SMALL SCRIPT FILLER.
BLANK = frozenset("\u2800\U0001d159\U00016fe4")
# The emoji exception: VARIATION SELECTOR-15/16 (text or emoji presentation: ❤️, #️⃣, 🏳️‍🌈)
# directly after a visible base character. Every other variation selector is refused
# (ideographic variation sequences U+E0100.. are also refused: rare, and invisible on their own).
_PRESENTATION = "\ufe0e\ufe0f"
# Spaces (category Zs: U+0020, NO-BREAK SPACE, U+2000..U+200A, IDEOGRAPHIC SPACE U+3000 ...)
# are real spacing in real text (French, CJK) and stay allowed; a required field made only of
# them is caught by `has_visible`.
# Kept for older importers: the Hangul fillers, now part of DEFAULT_IGNORABLE.
INVISIBLE_LETTERS = frozenset("\u115f\u1160\u3164\uffa0")
# Combining marks stacked on one character can be drawn over the characters around it (over
# an amount next to the memo); real scripts need a few, never more than this in a row.
MAX_COMBINING_RUN = 4

MAX_MEMO_CHARS = 500


def is_default_ignorable(ch: str) -> bool:
    o = ord(ch)
    return any(lo <= o <= hi for lo, hi in DEFAULT_IGNORABLE)


def _is_emoji_like(ch: str) -> bool:
    return unicodedata.category(ch) == "So" or 0x1F000 <= ord(ch) <= 0x1FAFF or ch in "\ufe0f"


def _is_mark(ch: str) -> bool:
    return unicodedata.category(ch) in ("Mn", "Me")


def _hidden(ch: str) -> bool:
    return unicodedata.category(ch) in REFUSED_CATEGORIES or ch in BLANK or is_default_ignorable(ch)


def _is_base(ch: str) -> bool:
    """A character a presentation selector may follow: drawn, and not a space or a mark."""
    return not (_hidden(ch) or _is_mark(ch) or unicodedata.category(ch) == "Zs")


def _refused_at(text: str):
    """Index of every character the text rule refuses, in order."""
    marks = 0
    for i, ch in enumerate(text):
        if _hidden(ch):
            if ch == _ZWJ and 0 < i < len(text) - 1 and _is_emoji_like(text[i - 1]) and _is_emoji_like(text[i + 1]):
                marks = 0
                continue
            if ch in _PRESENTATION and i > 0 and _is_base(text[i - 1]):
                marks += 1  # a mark (Mn) on its base, counted as one
                continue
            marks = 0
            yield i
            continue
        if _is_mark(ch):
            marks += 1
            if marks > MAX_COMBINING_RUN:
                yield i
            continue
        marks = 0


def first_refused(text: str) -> tuple[int, str] | None:
    """(index, character) of the first character the text rule refuses, or None."""
    for i in _refused_at(text):
        return i, text[i]
    return None


def has_visible(text: object) -> bool:
    """Whether the text shows at least one character: not only spaces, line breaks, marks, or
    characters the rule refuses or draws as nothing. For required fields (titles, names), after
    `check_user_text`: a title of spaces or of U+2800 must not pass for a title."""
    if not isinstance(text, str):
        return False
    return any(not (_hidden(ch) or _is_mark(ch) or unicodedata.category(ch) == "Zs" or ch in "\t\n\r\x0b\x0c")
               for ch in text)


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
        if _is_mark(ch) and not _hidden(ch):
            raise InvalidInput(f"{field} stacks more than {MAX_COMBINING_RUN} combining marks on one "
                               f"character (position {i}); they can be drawn over the text around it")
        name = unicodedata.name(ch, "control character")
        raise InvalidInput(f"{field} contains U+{ord(ch):04X} ({name}) at position {i}; "
                           "control, format, separator and invisible characters are not allowed in text")
    return value


def check_memo(memo: object) -> str:
    return check_user_text(memo, field="memo", max_chars=MAX_MEMO_CHARS)


def _escape(ch: str) -> str:
    o = ord(ch)
    return f"\\x{o:02x}" if o < 0x100 else f"\\u{o:04x}" if o < 0x10000 else f"\\U{o:08x}"


def visible(text: str | None) -> str:
    """Untrusted text made safe to print: every character the text rule refuses (and so any
    that could move a cursor, erase, reorder or hide) is shown as an escape such as `\\x1b` or
    `\\u202e`, never sent as is. Backslashes are doubled so an escape cannot be forged."""
    if text is None:
        return ""
    refused = set(_refused_at(text))
    return "".join("\\\\" if ch == "\\" else _escape(ch) if i in refused else ch for i, ch in enumerate(text))
