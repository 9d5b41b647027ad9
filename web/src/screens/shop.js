// The shop till (docs/shops.md): large digits for a counter tablet or a phone; one tap makes an
// open payment request (any member may pay it once) shown as a QR code; takings arrive live
// from the feed; a refund is a transfer the shop signs here, naming the original.
import { h, add, show, field, fieldError, busy, FAILED, screen, isCurrent, userText } from "../ui.js";
import { t, human, language } from "../i18n.js";
import * as W from "../wallet.js";
import { api } from "../api.js";
import { parseAmount, formatAmount, decimalText } from "../amounts.js";
import { qrSvg } from "../qr.js";
import { linkFor } from "./requests.js";
import { load } from "./money.js";
import * as S from "../shop_api.js";
import { signBox } from "./shop_pay.js";


export const currencyOf = (com, code) => com.currencies.find((c) => c.code === code) || { code, style: "decimal", decimals: 0 };
export const when = (at) => new Date(at).toLocaleString(language());
/** The cash part of a mixed payment, in euros (not the ledger's business: shown to collect). */
export const euros = (c, minor) => new Intl.NumberFormat(language(), { style: "currency", currency: "EUR" }).format(decimalText(minor, c.decimals));
/** The shop's profile, or null when it has none yet (or it is not published). */
export const profileOf = (address) => S.shop(address).catch((err) => { if (err.code === "not_found") return null; throw err; });
export const shareOf = (p) => (p ? Number(p.creditShareBp ?? Math.round((p.creditSharePercent || 0) * 100)) : 0);
/** A mixed payment's split: the credit part (floor, as the server) and the cash to collect. */
export function split(com, currency, total, bp) {
  const c = currencyOf(com, currency);
  if (!bp || c.style === "time") return null;
  const credit = S.creditPart(total, bp);
  return { credit, text: t("shop.split", { credit: human(c, credit), cash: euros(c, total - credit), share: bp / 100 }) };
}

export const shopMenu = (here) => h("nav", { class: "tabs board-menu", "aria-label": t("shop.menu") },
  h("ul", {}, [["#/till", "shop.till"], ["#/till/report", "shop.report"], ["#/till/code", "shop.code"], ["#/till/profile", "shop.profile"]]
    .map(([href, key]) => h("li", {}, h("a", { href, "aria-current": here === href ? "page" : false }, t(key))))));

const LABEL = "ayni.tillLabel";
export const tillLabel = () => localStorage.getItem(LABEL) || "";

// Takings already shown, per shop: the feed's cursor and the last lines, in memory and in
// sessionStorage, so neither a new screen nor a reload shows a payment twice or skips one.
const KEEP = 40;
const memory = {};
function takingsState(me) {
  if (!memory[me]) {
    let saved = null;
    try { saved = JSON.parse(sessionStorage.getItem(`ayni.takings.${me}`)); } catch { /* none */ }
    memory[me] = saved && Array.isArray(saved.items) ? saved : { cursor: null, items: [] };
  }
  return memory[me];
}
const saveState = (me) => sessionStorage.setItem(`ayni.takings.${me}`, JSON.stringify(memory[me]));

export function till() {
  const me = W.current().address;
  const main = show(t("shop.till"));
  add(main, shopMenu("#/till"));
  load(main, async () => [await W.getCommunity(), await profileOf(me)], ([com, prof]) => {
    const bp = shareOf(prof);
    const label = h("input", { id: "till-label", type: "text", maxlength: "32", value: tillLabel(), autocomplete: "off" });
    label.addEventListener("change", () => localStorage.setItem(LABEL, label.value.trim()));
    const decimal = com.currencies.filter((c) => c.style !== "time");
    const currency = h("select", { id: "till-currency" }, com.currencies.map((c) =>
      h("option", { value: c.code, selected: c === decimal[0] }, `${c.name} (${c.code})`)));
    const amount = h("input", { id: "till-amount", class: "till-amount", type: "text", inputmode: "decimal", autocomplete: "off" });
    const splitLine = h("p", { id: "till-split", class: "big", "aria-live": "polite" });
    const slot = h("div", { id: "till-status" });
    const panel = h("div", { id: "till-request" });
    const parse = () => parseAmount(currencyOf(com, currency.value), amount.value);
    const update = () => {
      let s = null;
      try { s = split(com, currency.value, parse(), bp); } catch { /* not an amount yet */ }
      splitLine.textContent = s ? s.text : "";
      slot.replaceChildren(); // an error about the previous amount no longer applies
    };
    amount.addEventListener("input", update);
    currency.addEventListener("change", update);
    const sep = (1.5).toLocaleString(language())[1];
    const keypad = h("div", { class: "keypad", role: "group", "aria-label": t("shop.keypad") },
      [..."789456123", sep, "0", "⌫"].map((k) => h("button", { type: "button", "aria-label": k === "⌫" ? t("shop.erase") : null, onclick: () => {
        amount.value = k === "⌫" ? amount.value.slice(0, -1) : amount.value + k;
        update();
      } }, k)));
    const charge = h("button", { type: "submit", class: "primary till-charge", id: "till-charge" }, t("shop.charge"));
    let current = null; // the request on display: its payment is announced when it arrives
    const form = h("form", { novalidate: true, class: "till", onsubmit: async (e) => {
      e.preventDefault();
      let total;
      try { total = parse(); } catch (err) { return fieldError(amount, slot, err.code); }
      const s = split(com, currency.value, total, bp);
      if (s && !s.credit) return fieldError(amount, slot, "shop_credit_zero");
      localStorage.setItem(LABEL, label.value.trim());
      const gen = screen();
      const body = { currency: currency.value, amount: s ? s.credit : total, till: label.value.trim() || undefined, expiresInSeconds: 3600 };
      if (s) Object.assign(body, { totalMinor: total, creditShareBp: bp });
      const r = await busy(charge, slot, () => S.openRequest(body));
      if (r === FAILED || !isCurrent(gen)) return;
      current = r;
      amount.value = "";
      update();
      const link = linkFor(r);
      panel.replaceChildren(h("div", { class: "card till-qr", "data-id": r.id },
        h("p", { class: "big" }, t("shop.toPay", { amount: human(currencyOf(com, r.currency), r.amount) })), s ? h("p", {}, s.text) : null,
        h("div", { class: "qr", html: qrSvg(link, t("request.qrLabel")) }),
        field(t("request.link"), h("input", { id: "till-link", type: "text", readonly: true, value: link })),
        h("p", { id: "till-paid", role: "status", "aria-live": "polite" }, t("shop.waiting"))));
    } },
    field(t("shop.label"), label, t("shop.labelHint")), field(t("pay.currency"), currency),
    field(t(bp ? "shop.total" : "pay.amount"), amount), splitLine, keypad, charge, slot);
    // one column on a phone; on a tablet the keypad left, the QR code and takings right
    add(main, h("div", { class: "till-grid" }, form, h("div", {}, panel, h("h2", {}, t("shop.takings")), takingsList(com, me, (it) => {
      const paid = document.getElementById("till-paid");
      if (current && it.requestId === current.id && paid) {
        paid.className = "success";
        paid.textContent = t("shop.paid", { amount: human(currencyOf(com, it.currency), it.amount), who: it.customerName || it.reference });
      }
    }))));
  });
}

/** The live takings: the feed polled every 2 s with the cursor, newest on top. */
function takingsList(com, me, onNew) {
  const st = takingsState(me);
  const list = h("ol", { class: "history takings", id: "takings" });
  const seen = new Set();
  const put = (it) => {
    if (seen.has(it.seq)) return false;
    seen.add(it.seq);
    list.prepend(takingRow(com, it));
    return true;
  };
  st.items.forEach(put);
  const gen = screen();
  let running = false;
  const poll = async () => {
    if (!isCurrent(gen)) return clearInterval(timer);
    if (running) return;
    running = true;
    try {
      for (;;) {
        const page = await S.feed(me, st.cursor);
        if (!isCurrent(gen)) return;
        for (const it of page.items) {
          if (put(it)) { st.items.push(it); onNew(it); }
        }
        st.cursor = page.nextCursor ?? st.cursor;
        st.items = st.items.slice(-KEEP);
        saveState(me);
        if (page.items.length < 100) break;
      }
    } catch { /* offline for a moment: the next tick asks again from the same cursor */ } finally { running = false; }
  };
  const timer = setInterval(poll, 2000);
  poll();
  return list;
}

function takingRow(com, it) {
  const c = currencyOf(com, it.currency);
  const refund = it.kind === "refund";
  const slot = h("div");
  const li = h("li", { class: refund ? "out" : "in", "data-seq": it.seq },
    h("span", { class: "amount" }, (refund ? "−" : "+") + human(c, it.amount)), " ",
    it.customerName ? userText("span", it.customerName, { class: "who" }) : h("code", { class: "ref" }, it.reference),
    it.till ? [" · ", userText("span", it.till)] : null,
    refund && it.refundOf ? [" · ", h("a", { href: `#/tx/${it.refundOf}` }, t("shop.refundOf", { seq: it.refundOf }))] : null,
    it.mixed ? h("span", { class: "when" }, t("shop.mixedOf", { total: euros(c, it.mixed.totalMinor), share: it.mixed.creditShareBp / 100 })) : null,
    h("span", { class: "when" }, `${when(it.at)} · #${it.seq}`), slot);
  if (!refund) {
    const b = h("button", { type: "button", class: "refund", onclick: () => refundForm(com, it, slot, b) }, t("shop.refund"));
    li.insertBefore(b, slot);
  }
  return li;
}

/** Refund all or part: the server names the refund (its request id) and what remains
 * refundable; the shop's browser signs the transfer back to the customer. */
async function refundForm(com, it, slot, button) {
  const c = currencyOf(com, it.currency);
  button.hidden = true;
  const tx = await busy(button, slot, () => api(`/v1/transfers/${it.seq}`));
  if (tx === FAILED) { button.hidden = false; return; }
  const left = tx.refundableRemaining ?? it.amount;
  if (!left) return slot.replaceChildren(h("p", { class: "hint" }, t("shop.refunded", { amount: human(c, it.amount) })));
  const amount = h("input", { id: `refund-${it.seq}`, type: "text", inputmode: "decimal", autocomplete: "off", value: formatAmount(c, left) });
  const out = h("div");
  const go = h("button", { type: "submit", class: "danger" }, t("shop.prepareRefund"));
  slot.replaceChildren(h("form", { novalidate: true, class: "card", onsubmit: async (e) => {
    e.preventDefault();
    let minor;
    try { minor = parseAmount(c, amount.value); } catch (err) { return fieldError(amount, out, err.code); }
    if (minor > left) return fieldError(amount, out, "refund_exceeds_remaining");
    const prepared = await busy(go, out, async () => {
      const r = await S.refund(it.seq, minor);
      if (!S.refundChecks(tx, r, minor)) throw Object.assign(new Error("refund_mismatch"), { code: "refund_mismatch" });
      return W.transferDocument({ payee: r.payee, currency: r.currency, amount: r.amount, requestId: r.refundId });
    });
    if (prepared === FAILED) return;
    go.hidden = true;
    amount.readOnly = true;
    out.replaceChildren(signBox(com, prepared, (res) => out.replaceChildren(h("p", { class: "success", role: "status" },
      t("shop.refundDone", { amount: human(c, minor) }), " ", h("a", { href: `#/tx/${res.seq}` }, `#${res.seq}`)))));
  } }, field(t("shop.refundAmount"), amount, t("shop.refundLeft", { amount: human(c, left) })), go, out));
}

/** The link between a payment and its refunds, for history lines and receipts (both parties):
 * "refund of #12" on a refund, "refunded 2.00 CRED" on a payment refunded in part or in full. */
export function refundNote(c, tx) {
  const refunded = tx.refunded ?? (tx.refunds || []).reduce((n, r) => n + r.amount, 0);
  return tx.refundOf ? t("shop.refundOf", { seq: tx.refundOf }) : refunded ? t("shop.refundedN", { amount: human(c, refunded) }) : "";
}
