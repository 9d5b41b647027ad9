// The shop's back office (docs/shops.md): the takings report (CSV and a printable page), the
// public profile, and the printable standing payment code.
import { h, add, show, field, fieldError, busy, FAILED, screen, isCurrent, userText } from "../ui.js";
import { t, human } from "../i18n.js";
import * as W from "../wallet.js";
import { formatAmount, parseAmount } from "../amounts.js";
import { hasVisible } from "../text.js";
import { qrSvg } from "../qr.js";
import { load } from "./money.js";
import * as S from "../shop_api.js";
import { currencyOf, profileOf, shopMenu, tillLabel } from "./shop.js";

const today = () => new Date().toISOString().slice(0, 10);
const printButton = () => h("button", { type: "button", class: "no-print", onclick: () => window.print() }, t("shop.print"));

/** One CSV cell as Python's csv module writes it (ledger/shops.py report_csv, so the file is the
 * server's and ayni-wallet's byte for byte); a till label a spreadsheet would run as a formula
 * (= + - @) is prefixed with '. */
const cell = (v, k) => {
  let s = String(v ?? "");
  if (k === "till" && /^[=+\-@\t\r]/.test(s)) s = `'${s}`;
  return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
};

export function report(params) {
  const me = W.current().address;
  const main = show(t("shop.report"));
  add(main, shopMenu("#/till/report"));
  const p = { period: params.get("period") || "day", from: params.get("from") || today(), to: params.get("to") || today(), till: params.get("till") || "" };
  const period = h("select", { id: "rep-period" }, ["day", "week", "month"].map((k) => h("option", { value: k, selected: k === p.period }, t(`shop.per.${k}`))));
  const from = h("input", { id: "rep-from", type: "date", value: p.from, required: true });
  const to = h("input", { id: "rep-to", type: "date", value: p.to, required: true });
  const till = h("input", { id: "rep-till", type: "text", maxlength: "32", value: p.till });
  add(main, h("form", { class: "no-print", onsubmit: (e) => {
    e.preventDefault();
    location.hash = `#/till/report?${new URLSearchParams({ period: period.value, from: from.value, to: to.value, till: till.value.trim() })}`;
  } }, field(t("shop.period"), period), field(t("shop.from"), from), field(t("shop.to"), to), field(t("shop.tillFilter"), till),
  h("button", { type: "submit", class: "primary", id: "rep-show" }, t("shop.show"))));
  load(main, async () => [await W.getCommunity(), await S.takings(me, { ...p, format: "json" })], ([com, data]) => {
    const cols = ["period", "till", "currency", "count", "sum", "refunds", "net"];
    const money = (r, k) => (["sum", "refunds", "net"].includes(k) ? human(currencyOf(com, r.currency), r[k]) : r[k] ?? "");
    const table = (rows, keys, id) => h("div", { class: "scroll" }, h("table", { id }, h("thead", {}, h("tr", {}, keys.map((k) => h("th", { scope: "col" }, t(`shop.col.${k}`))))),
      h("tbody", {}, rows.map((r) => h("tr", {}, keys.map((k) => (k === "till" ? userText("td", r.till || "–") : h("td", { "data-col": k }, money(r, k)))))))));
    const csv = [cols, ...data.rows.map((r) => cols.map((k) => cell(r[k], k)))].map((r) => `${r.join(",")}\n`).join("");
    add(main, h("p", { class: "hint" }, t("shop.range", { from: p.from, to: p.to })),
      data.rows.length ? table(data.rows, cols, "takings-rows") : h("p", { id: "rep-empty" }, t("shop.noTakings")),
      h("h2", {}, t("shop.totals")), table(data.totals, cols.slice(2), "takings-totals"),
      h("p", { class: "actions no-print" }, h("a", { class: "button", id: "rep-csv", download: `takings-${p.from}-${p.to}.csv`,
        href: URL.createObjectURL(new Blob([csv], { type: "text/csv" })) }, t("shop.csv")), " ", printButton()));
  });
}

export function profile() {
  const me = W.current().address;
  const main = show(t("shop.profile"));
  add(main, shopMenu("#/till/profile"));
  load(main, () => profileOf(me), (s) => {
    s = s || {};
    const name = h("input", { id: "prof-name", type: "text", maxlength: "120", value: s.name || "", required: true });
    const addr = h("input", { id: "prof-address", type: "text", maxlength: "240", value: s.postalAddress || "" });
    const hours = h("textarea", { id: "prof-hours", rows: "3", maxlength: "240" }, s.openingHours || "");
    const pub = h("input", { type: "checkbox", id: "prof-published", checked: s.published !== false && Boolean(s.name) });
    const bp = s.creditShareBp ?? Math.round((s.creditSharePercent || 0) * 100);
    const share = h("input", { id: "prof-share", type: "text", inputmode: "decimal", value: bp ? formatAmount({ decimals: 2 }, bp).replace(/\.?0+$/, "") : "" });
    const slot = h("div", { id: "status" });
    const save = h("button", { type: "submit", class: "primary", id: "prof-save" }, t("shop.save"));
    add(main, h("p", { class: "hint" }, t("shop.profileHint")), h("form", { novalidate: true, onsubmit: async (e) => {
      e.preventDefault();
      if (!hasVisible(name.value)) return fieldError(name, slot, "shop_name_missing");
      let creditShareBp = 0;
      if (share.value.trim() && !/^0*[.,]?0*$/.test(share.value.trim())) {
        try { creditShareBp = parseAmount({ style: "decimal", decimals: 2 }, share.value); } catch (err) { return fieldError(share, slot, err.code); }
        if (creditShareBp > 10000) return fieldError(share, slot, "share_too_large");
      }
      const gen = screen();
      const out = await busy(save, slot, () => S.saveProfile(me, { name: name.value.trim(), postalAddress: addr.value.trim() || null,
        openingHours: hours.value.trim() || null, published: pub.checked, creditShareBp }));
      if (out !== FAILED && isCurrent(gen)) slot.replaceChildren(h("p", { class: "success", role: "status" }, t(pub.checked ? "shop.saved" : "shop.savedHidden")));
    } }, field(t("shop.name"), name), field(t("shop.address"), addr), field(t("shop.hours"), hours),
    h("label", { class: "check" }, pub, t("shop.published")), field(t("shop.share"), share, t("shop.shareHint")), save, slot));
  });
}

/** The standing payment code, to print and stick on the counter. */
export function code(params) {
  const me = W.current().address;
  const main = show(t("shop.code"));
  add(main, shopMenu("#/till/code"));
  load(main, () => profileOf(me), (s) => {
    const label = h("input", { id: "code-till", type: "text", maxlength: "32", value: params.get("till") ?? tillLabel() });
    const box = h("div", { class: "card standing" });
    const draw = () => {
      const link = S.standingLink(me, label.value.trim());
      box.replaceChildren(s ? userText("p", s.name, { class: "big", id: "code-name" }) : h("p", { class: "notice" }, t("shop.noProfile")),
        label.value.trim() ? userText("p", label.value.trim(), { class: "hint" }) : null,
        h("div", { class: "qr", html: qrSvg(link, t("shop.codeQr")) }), h("p", { class: "hint" }, t("shop.scanToPay")),
        h("p", {}, h("code", { id: "code-link" }, link)));
    };
    label.addEventListener("input", draw);
    draw();
    add(main, h("div", { class: "no-print" }, field(t("shop.label"), label, t("shop.labelHint"))), box, printButton());
  });
}
