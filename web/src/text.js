// The one text rule for member-written text and the one way to show untrusted text, mirroring
// ledger/core/text.py (check_user_text / visible). Pure functions, so node tests them directly.
//
// Why: a payee writes the memo of a payment request and the payer reads it right before
// signing. Control characters (CR, ESC, other C0/C1), line/paragraph separators and format
// characters (bidi controls, zero-width characters, BOM, U+061C) could hide or reorder what is
// shown. The server refuses new text holding them; text already stored (older data) is shown
// through `visible`, which turns every such character into a visible escape.

/** Unicode categories refused in member-written text (REFUSED_CATEGORIES in text.py). */
const REFUSED = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}\p{Co}\p{Cn}]/u;
const BIDI = /[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/;
const ZWJ = "\u200d";
/** Letters that render as nothing (Hangul fillers): INVISIBLE_LETTERS in text.py. */
const INVISIBLE = /[\u115f\u1160\u3164\uffa0]/;
/** Combining marks in a row beyond this can be drawn over the text around them (MAX_COMBINING_RUN). */
const MAX_COMBINING_RUN = 4;
const MARK = /[\p{Mn}\p{Me}]/u;
const hidden = (ch) => REFUSED.test(ch) || INVISIBLE.test(ch);
const emojiLike = (ch) => /\p{So}/u.test(ch) || (ch.codePointAt(0) >= 0x1f000 && ch.codePointAt(0) <= 0x1faff) || ch === "\ufe0f";

/** [index, character] of the first character the rule refuses, or null. ZERO WIDTH JOINER
 * is allowed between two emoji (family and profession sequences), as on the server. */
export function firstRefused(text) {
  const chars = Array.from(String(text));
  let marks = 0;
  for (let i = 0; i < chars.length; i += 1) {
    const ch = chars[i];
    if (MARK.test(ch)) {
      marks += 1;
      if (marks > MAX_COMBINING_RUN) return [i, ch];
      continue;
    }
    marks = 0;
    if (!hidden(ch)) continue;
    if (ch === ZWJ && i > 0 && i < chars.length - 1 && emojiLike(chars[i - 1]) && emojiLike(chars[i + 1])) continue;
    return [i, ch];
  }
  return null;
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
  let out = "";
  let marks = 0;
  for (const ch of String(text)) {
    marks = MARK.test(ch) ? marks + 1 : 0;
    out += ch === "\\" ? "\\\\" : hidden(ch) || marks > MAX_COMBINING_RUN ? escape(ch) : ch;
  }
  return out;
}
