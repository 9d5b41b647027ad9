// Every user-facing string comes from web/i18n/<lang>.json (one catalogue per language, same
// keys; English is the fallback). To add a language: copy en.json, translate, rebuild.
import en from "../i18n/en.json" with { type: "json" };
import es from "../i18n/es.json" with { type: "json" };
import { decimalText } from "./amounts.js";

export const CATALOGUES = { en, es };
let lang = "en";

export function pickLanguage() {
  let saved = null;
  try { saved = localStorage.getItem("ayni.lang"); } catch { /* storage blocked: the browser's languages decide */ }
  const wanted = [saved, ...(navigator.languages || [navigator.language])].filter(Boolean);
  for (const w of wanted) {
    const base = String(w).toLowerCase().split("-")[0];
    if (CATALOGUES[base]) return setLanguage(base);
  }
  return setLanguage("en");
}

export function setLanguage(code) {
  lang = CATALOGUES[code] ? code : "en";
  document.documentElement.lang = lang;
  return lang;
}

export const language = () => lang;

/** t("pay.title"), t("balance.canSpend", {amount: "7.5 hours"}). A missing key shows itself. */
export function t(key, vars = {}) {
  const text = CATALOGUES[lang][key] ?? en[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, k) => (k in vars ? String(vars[k]) : `{${k}}`));
}

export const has = (key) => key in CATALOGUES[lang] || key in en;

/** An amount for people: "7.5 hours", "7 hours 20 minutes", "12.50 CRED" (sign kept).
 * Intl formats the exact decimal string (never a float), so big amounts stay exact. */
export function human(currency, minor) {
  const sign = minor < 0 ? "-" : "";
  const n = Math.abs(minor);
  const nf = (x, digits) => new Intl.NumberFormat(lang, { minimumFractionDigits: digits, maximumFractionDigits: digits }).format(x);
  if (currency.style === "time") {
    // "45 minutes", "7.5 hours", "7 h 20 min": whichever reads most plainly.
    if (n < 60) return sign + t(n === 1 ? "unit.minute" : "unit.minutes", { n });
    if (n % 6 === 0) {
      const whole = Math.floor(n / 60), tenths = (n % 60) / 6;
      return sign + t(n === 60 ? "unit.hour" : "unit.hours", { n: tenths ? nf(`${whole}.${tenths}`, 1) : nf(String(whole), 0) });
    }
    return sign + t("unit.hoursMinutes", { h: Math.floor(n / 60), m: n % 60 });
  }
  return `${sign}${nf(decimalText(n, currency.decimals), currency.decimals)} ${currency.code}`;
}
