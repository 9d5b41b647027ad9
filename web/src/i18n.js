// Every user-facing string comes from web/i18n/<lang>.json (one catalogue per language, same
// keys; English is the fallback). To add a language: copy en.json, translate, rebuild.
import en from "../i18n/en.json";
import es from "../i18n/es.json";

export const CATALOGUES = { en, es };
let lang = "en";

export function pickLanguage() {
  const saved = localStorage.getItem("ayni.lang");
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

/** An amount for people: "7.5 hours", "7 hours 20 minutes", "12.50 CRED" (sign kept). */
export function human(currency, minor) {
  const sign = minor < 0 ? "-" : "";
  const n = Math.abs(minor);
  const nf = (x, digits) => new Intl.NumberFormat(lang, { minimumFractionDigits: digits, maximumFractionDigits: digits }).format(x);
  if (currency.style === "time") {
    // "45 minutes", "7.5 hours", "7 h 20 min": whichever reads most plainly.
    if (n < 60) return sign + t(n === 1 ? "unit.minute" : "unit.minutes", { n });
    if (n % 6 === 0) {
      const hours = n / 60;
      return sign + t(hours === 1 ? "unit.hour" : "unit.hours", { n: nf(hours, Number.isInteger(hours) ? 0 : 1) });
    }
    return sign + t("unit.hoursMinutes", { h: Math.floor(n / 60), m: n % 60 });
  }
  const scale = 10 ** currency.decimals;
  return `${sign}${nf(n / scale, currency.decimals)} ${currency.code}`;
}
