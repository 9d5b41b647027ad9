// The customer's side of a shop (docs/shops.md): the standing code (#/shop/ADDRESS?till=L: the
// customer types the amount) and a till's open request (#/pay?request=ID with no payer). The
// shop's name is the one it published; the customer may show their name to the shop for this
// one payment (off unless ticked). Signing is the app's usual: exact values, signed here.
import { h, add, show, field, fieldError, busy, FAILED, screen, isCurrent, userText, short, errorBox } from "../ui.js";
import { t, human } from "../i18n.js";
import * as W from "../wallet.js";
import { api } from "../api.js";
import { parseAddress } from "../crypto.js";
import { parseAmount } from "../amounts.js";
import { firstRefused } from "../text.js";
import { REQUEST_ID } from "../links.js";
import { load } from "./money.js";
import * as S from "../shop_api.js";
import { currencyOf, profileOf, shareOf, split, euros } from "./shop.js";

/** The exact values to be signed and the Sign button; `done(result)` after the post.
 * `before` runs first (the name consent, which must reach the server before the payment). */
export function signBox(com, prepared, done, before) {
  const m = prepared.doc.message;
  const d = prepared.doc.domain;
  const slot = h("div", { id: "status" });
  const go = h("button", { type: "button", class: "primary", id: "sign-and-pay" }, t("confirm.sign"));
  let sent = false;
  go.addEventListener("click", async () => {
    if (sent) return;
    const res = await busy(go, slot, async () => { if (before) await before(); return W.signAndPost(prepared); }, t("confirm.sending"));
    if (res === FAILED) return;
    sent = true;
    go.disabled = true;
    done(res);
  });
  const row = (k, v) => [h("dt", {}, k), h("dd", {}, String(v))];
  return h("div", {}, h("p", { class: "summary", id: "confirm-summary" },
    t("confirm.summary", { amount: human(currencyOf(com, m.currency), m.amount), who: short(m.payee) })),
  h("h2", {}, t("confirm.exact")),
  h("dl", { class: "exact", id: "typed-data" }, ["payer", "payee", "currency", "amount", "nonce", "validUntil", "memoHash", "requestId"]
    .map((k) => row(k, m[k])), row("domain", `${d.name} v${d.version}, chainId ${d.chainId}, salt ${d.salt}`)),
  h("p", { class: "hint" }, t("confirm.explain")), go, slot);
}

const shopName = (s, address) => (s ? userText("span", s.name, { id: "shop-name" }) : h("code", { id: "shop-name" }, short(address)));
const consent = () => h("label", { class: "check" }, h("input", { type: "checkbox", id: "share-name" }), t("shop.shareName"));
const paidTo = (res) => { location.hash = `#/tx/${res.seq}?new=1`; };

/** #/pay?request=ID: a till's open request (no payer) is paid here; any other goes to `pay`. */
export function payRequestAny(params, pay) {
  const id = params.get("request");
  if (!REQUEST_ID.test(id || "")) return pay(params);
  const main = show(t("pay.title"));
  load(main, async () => {
    const r = await api(`/v1/requests/${id}`);
    return [await W.getCommunity(), r, r.payer ? null : await profileOf(r.payee)];
  }, ([com, r, s]) => {
    if (r.payer) return pay(params);
    if (r.status !== "open") return add(main, errorBox({ code: `request_status_${r.status}` }));
    const c = currencyOf(com, r.currency);
    const box = consent();
    add(main, h("p", { class: "big" }, t("shop.payTo", { amount: human(c, r.amount) }), " ", shopName(s, r.payee)),
      r.till ? h("p", { class: "hint" }, t("shop.atTill"), " ", userText("span", r.till)) : null,
      r.mixed ? h("p", { id: "mixed" }, t("shop.mixedOf", { total: euros(c, r.mixed.totalMinor), share: r.mixed.creditShareBp / 100 }),
        " ", t("shop.cashPart", { cash: euros(c, r.mixed.totalMinor - r.mixed.creditMinor) })) : null, box);
    load(main, () => W.transferDocument({ payee: r.payee, currency: r.currency, amount: r.amount, requestId: r.id }),
      (prepared) => add(main, signBox(com, prepared, paidTo, () => box.firstChild.checked && S.shareName(r.id))));
  });
}

/** #/shop/ADDRESS?till=L: the shop's standing code; the customer types the amount. */
export function shopPay(address, params) {
  const main = show(t("shop.payTitle"));
  const shop = parseAddress(address || "");
  if (!shop) return add(main, errorBox({ code: "bad_link" }));
  const label = params.get("till") || "";
  const till = label.length <= 32 && !firstRefused(label) ? label : ""; // a link is outside input
  load(main, async () => [await W.getCommunity(), await S.shop(shop)], ([com, s]) => {
    const bp = shareOf(s);
    const currency = h("select", { id: "sp-currency" }, com.currencies.map((c) => h("option", { value: c.code }, `${c.name} (${c.code})`)));
    currency.value = (com.currencies.find((c) => c.style !== "time") || com.currencies[0]).code;
    const amount = h("input", { id: "sp-amount", class: "till-amount", type: "text", inputmode: "decimal", autocomplete: "off" });
    const splitLine = h("p", { id: "sp-split", "aria-live": "polite" });
    const parse = () => parseAmount(currencyOf(com, currency.value), amount.value);
    const update = () => { let x = null; try { x = split(com, currency.value, parse(), bp); } catch { /* typing */ } splitLine.textContent = x ? x.text : ""; slot.replaceChildren(); };
    amount.addEventListener("input", update);
    currency.addEventListener("change", update);
    const box = consent();
    const slot = h("div", { id: "status" });
    const review = h("button", { type: "submit", class: "primary", id: "sp-review" }, t("pay.review"));
    const out = h("div");
    const form = h("form", { novalidate: true, onsubmit: async (e) => {
      e.preventDefault();
      let total;
      try { total = parse(); } catch (err) { return fieldError(amount, slot, err.code); }
      const x = split(com, currency.value, total, bp);
      if (x && !x.credit) return fieldError(amount, slot, "shop_credit_zero");
      const body = { currency: currency.value, amount: x ? x.credit : total, till: till || undefined, shareName: box.firstChild.checked };
      if (x) Object.assign(body, { totalMinor: total, creditShareBp: bp });
      const gen = screen();
      const prepared = await busy(review, slot, async () => {
        const r = await S.checkout(shop, body);
        return W.transferDocument({ payee: r.payee, currency: r.currency, amount: r.amount, requestId: r.id });
      });
      if (prepared === FAILED || !isCurrent(gen)) return;
      for (const el of form.elements) el.disabled = true;
      out.replaceChildren(signBox(com, prepared, paidTo));
    } }, field(t(bp ? "shop.total" : "pay.amount"), amount, t("pay.amountHint")), splitLine, field(t("pay.currency"), currency), box, review, slot);
    add(main, h("p", { class: "big" }, shopName(s, shop)),
      till ? h("p", { class: "hint" }, t("shop.atTill"), " ", userText("span", till)) : null,
      s.postalAddress ? userText("p", s.postalAddress, { class: "hint" }) : null,
      s.openingHours ? userText("p", s.openingHours, { class: "hint pre" }) : null, form, out);
  });
}
