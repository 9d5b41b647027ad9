// The one text rule for member-written text and the one way to show untrusted text, mirroring
// ledger/core/text.py (check_user_text / visible). Pure functions, so node tests them directly.
//
// Why: a payee writes the memo of a payment request and the payer reads it right before
// signing. Control characters (CR, ESC, other C0/C1), line/paragraph separators and format
// characters (bidi controls, zero-width characters, BOM, U+061C) could hide or reorder what is
// shown; characters drawn as nothing (default-ignorable code points, the braille blank, Hangul
// fillers) make text look empty or hide what it holds. The server refuses new text holding them;
// text already stored (older data) is shown through `visible`, which turns every such character
// into a visible escape. `hasVisible` tells whether a required field shows anything at all.

/** Unicode categories refused in member-written text (REFUSED_CATEGORIES in text.py). */
const REFUSED = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}\p{Co}\p{Cn}]/u;
const BIDI = /[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/;
const ZWJ = "\u200d";
/** Default_Ignorable_Code_Point, Unicode 14.0 (DerivedCoreProperties-14.0.0.txt), the same
 * ranges as DEFAULT_IGNORABLE in text.py (tests/test_user_text.py checks they are equal). Node's
 * own \p{Default_Ignorable_Code_Point} follows a newer Unicode, so the list is spelled out. */
export const DEFAULT_IGNORABLE = [
  [0x00ad, 0x00ad], [0x034f, 0x034f], [0x061c, 0x061c], [0x115f, 0x1160], [0x17b4, 0x17b5],
  [0x180b, 0x180d], [0x180e, 0x180e], [0x180f, 0x180f], [0x200b, 0x200f], [0x202a, 0x202e],
  [0x2060, 0x2064], [0x2065, 0x2065], [0x2066, 0x206f], [0x3164, 0x3164], [0xfe00, 0xfe0f],
  [0xfeff, 0xfeff], [0xffa0, 0xffa0], [0xfff0, 0xfff8], [0x1bca0, 0x1bca3], [0x1d173, 0x1d17a],
  [0xe0000, 0xe0000], [0xe0001, 0xe0001], [0xe0002, 0xe001f], [0xe0020, 0xe007f], [0xe0080, 0xe00ff],
  [0xe0100, 0xe01ef], [0xe01f0, 0xe0fff],
];
/** Drawn blank by common fonts though assigned and not ignorable (BLANK in text.py):
 * BRAILLE PATTERN BLANK, MUSICAL SYMBOL NULL NOTEHEAD, KHITAN SMALL SCRIPT FILLER. */
export const BLANK = ["\u2800", "\u{1d159}", "\u{16fe4}"];
/** VARIATION SELECTOR-15/16, allowed directly after a visible base (❤️, #️⃣, 🏳️‍🌈). */
const PRESENTATION = /^[\ufe0e\ufe0f]$/u;
/** Combining marks in a row beyond this can be drawn over the text around them (MAX_COMBINING_RUN). */
const MAX_COMBINING_RUN = 4;
const MARK = /^[\p{Mn}\p{Me}]$/u;
const SPACE = /^\p{Zs}$/u;
const ignorable = (ch) => {
  const o = ch.codePointAt(0);
  return DEFAULT_IGNORABLE.some(([lo, hi]) => lo <= o && o <= hi);
};
const hidden = (ch) => REFUSED.test(ch) || BLANK.includes(ch) || ignorable(ch);
const isBase = (ch) => !(hidden(ch) || MARK.test(ch) || SPACE.test(ch));
const emojiLike = (ch) => /\p{So}/u.test(ch) || (ch.codePointAt(0) >= 0x1f000 && ch.codePointAt(0) <= 0x1faff) || ch === "\ufe0f";

/** Indexes (in code points) of every character the rule refuses, as _refused_at in text.py. */
function refusedAt(chars) {
  const out = [];
  let marks = 0;
  for (let i = 0; i < chars.length; i += 1) {
    const ch = chars[i];
    if (hidden(ch)) {
      if (ch === ZWJ && i > 0 && i < chars.length - 1 && emojiLike(chars[i - 1]) && emojiLike(chars[i + 1])) {
        marks = 0;
        continue;
      }
      if (PRESENTATION.test(ch) && i > 0 && isBase(chars[i - 1])) {
        marks += 1;
        continue;
      }
      marks = 0;
      out.push(i);
      continue;
    }
    if (MARK.test(ch)) {
      marks += 1;
      if (marks > MAX_COMBINING_RUN) out.push(i);
      continue;
    }
    marks = 0;
  }
  return out;
}

/** [index, character] of the first character the rule refuses, or null. ZERO WIDTH JOINER
 * is allowed between two emoji (family and profession sequences), as on the server. */
export function firstRefused(text) {
  const chars = Array.from(String(text));
  const bad = refusedAt(chars);
  return bad.length ? [bad[0], chars[bad[0]]] : null;
}

/** Whether the text shows at least one character (has_visible in text.py): not only spaces,
 * line breaks, marks, or characters drawn as nothing. For required fields (titles, names). */
export function hasVisible(text) {
  if (typeof text !== "string") return false;
  return Array.from(text).some((ch) => !(hidden(ch) || MARK.test(ch) || SPACE.test(ch) || "\t\n\r\v\f".includes(ch)));
}

/** The error code for a note the server would refuse, or null: "memo_bidi" for direction
 * marks (the message people already know), "memo_control" for any other refused character. */
export function memoProblem(text) {
  const bad = firstRefused(text);
  if (!bad) return null;
  return BIDI.test(bad[1]) ? "memo_bidi" : "memo_control";
}

/** MAX_MEMO_CHARS in text.py, counted in code points as Python counts characters. */
export const MAX_MEMO_CHARS = 500;

/** The note a payment carries over from the request it pays: the request's memo when the
 * server would accept it as a transfer memo, else none. A request stored before the text rule
 * may hold characters it now refuses; copying them would make paying the request fail with a
 * 400, and a payment needs no memo (ayni-wallet never copies one). */
export function memoToCopy(memo) {
  if (typeof memo !== "string" || memo === "") return "";
  return Array.from(memo).length <= MAX_MEMO_CHARS && !firstRefused(memo) ? memo : "";
}

const escape = (ch) => {
  const o = ch.codePointAt(0);
  const hex = (n, w) => o.toString(16).padStart(w, "0");
  return o < 0x100 ? `\\x${hex(o, 2)}` : o < 0x10000 ? `\\u${hex(o, 4)}` : `\\U${hex(o, 8)}`;
};

/** Untrusted text made safe to show: every character the rule refuses becomes an escape
 * such as `\x1b` or `\u202e`; backslashes are doubled so an escape cannot be forged. */
export function visible(text) {
  if (text === null || text === undefined) return "";
  const chars = Array.from(String(text));
  const refused = new Set(refusedAt(chars));
  return chars.map((ch, i) => (ch === "\\" ? "\\\\" : refused.has(i) ? escape(ch) : ch)).join("");
}
