// Amounts are integers of minor units (minutes for a time currency, 1/10^decimals otherwise),
// parsed and formatted exactly, never through floats (mirrors ledger/core/amounts.py).
export const MAX_AMOUNT = 2 ** 53 - 1;

export const scaleOf = (c) => (c.style === "time" ? 60 : 10 ** c.decimals);

/** What a person types ("1.5", "12", and for time "1h30m", "45m") -> minor units, or throws
 * an Error whose .code is a catalogue key. */
export function parseAmount(c, text) {
  const typed = String(text ?? "").trim().replace(/_/g, "");
  const fail = (code) => { const e = new Error(code); e.code = code; throw e; };
  // "1,250" is 1250 in English and 1.25 in Spanish: refuse to guess. A decimal comma with
  // one, two or four-plus digits ("12,50") is unambiguous.
  if (/^\d{1,3}(,\d{3})+(\.\d*)?$/.test(typed)) fail("amount_ambiguous");
  const raw = typed.replace(",", ".");
  if (!raw) fail("amount_missing");
  if (raw.startsWith("-")) fail("amount_negative");
  let minor;
  if (c.style === "time" && /[hm]$/.test(raw)) {
    const m = /^(?:(\d{1,15})h)?(?:(\d{1,15})m)?$/.exec(raw);
    if (!m || (m[1] === undefined && m[2] === undefined)) fail("amount_not_duration");
    minor = BigInt(m[1] || 0) * 60n + BigInt(m[2] || 0);
  } else {
    const m = /^(\d{1,20})(?:\.(\d{1,30}))?$/.exec(raw);
    if (!m) fail("amount_not_number");
    let [, whole, frac = ""] = m;
    if (c.style === "time") {
      const den = 10n ** BigInt(frac.length);
      const num = (BigInt(whole) * den + BigInt(frac || 0)) * 60n;
      if (num % den) fail("amount_not_minutes");
      minor = num / den;
    } else {
      frac = frac.length > c.decimals ? frac.replace(/0+$/, "") : frac;
      if (frac.length > c.decimals) fail("amount_too_precise");
      minor = BigInt(whole) * BigInt(scaleOf(c)) + BigInt(frac.padEnd(c.decimals, "0") || 0);
    }
  }
  if (minor <= 0n) fail("amount_not_positive");
  if (minor > BigInt(MAX_AMOUNT)) fail("amount_too_large");
  return Number(minor);
}

/** The ledger's compact form: "-1h30m", "12.50" (same as format_amount in Python). Integer
 * arithmetic throughout (BigInt), so no amount up to MAX_AMOUNT is ever rounded. */
export function formatAmount(c, minor) {
  const sign = minor < 0 ? "-" : "";
  const n = BigInt(Math.abs(minor));
  if (c.style === "time") {
    const hours = n / 60n, minutes = n % 60n;
    if (hours && minutes) return `${sign}${hours}h${String(minutes).padStart(2, "0")}m`;
    return hours ? `${sign}${hours}h` : `${sign}${minutes}m`;
  }
  if (c.decimals === 0) return `${sign}${n}`;
  const s = BigInt(scaleOf(c));
  return `${sign}${n / s}.${String(n % s).padStart(c.decimals, "0")}`;
}

/** Exact decimal text of minor / scale ("12.5" for 125 at scale 10), for Intl formatting. */
export function decimalText(minor, decimals) {
  const n = BigInt(Math.abs(minor));
  if (!decimals) return String(n);
  const s = 10n ** BigInt(decimals);
  return `${n / s}.${String(n % s).padStart(decimals, "0")}`;
}
