// Payment requests: incoming ones to approve or decline; creating one and showing it as a QR
// code and a link (a shop till displays it; the member's phone opens it, pre-filled).
import { h, add, show, field, fieldError, busy, FAILED, short, screen, isCurrent, userText, nextPage } from "../ui.js";
import { t, human } from "../i18n.js";
import { api } from "../api.js";
import * as W from "../wallet.js";
import { parseAddress } from "../crypto.js";
import { parseAmount } from "../amounts.js";
import { nameOf } from "../contacts.js";
import { qrSvg } from "../qr.js";
import { load, addressInput } from "./money.js";
import { memoProblem } from "../text.js";

const who = (address) => nameOf(address) || short(address);
const currencyOf = (com, code) => com.currencies.find((c) => c.code === code) || { code, style: "decimal", decimals: 0 };

export function requests(params) {
  const direction = params.get("direction") === "outgoing" ? "outgoing" : "incoming";
  const main = show(t("requests.title"));
  add(main, h("p", { class: "tabs" },
    h("a", { href: "#/requests", "aria-current": direction === "incoming" ? "page" : false }, t("requests.incoming")), " ",
    h("a", { href: "#/requests?direction=outgoing", "aria-current": direction === "outgoing" ? "page" : false }, t("requests.outgoing")), " ",
    h("a", { class: "button", href: "#/request/new" }, t("nav.request"))));
  load(main, () => W.getCommunity(), (com) => {
    const list = h("ul", { class: "requests", id: "requests" });
    const more = h("button", { type: "button", id: "requests-more", hidden: true }, t("requests.more"));
    const shown = new Set(); // a request is never listed twice, whatever a page returns
    const query = `/v1/requests?direction=${direction}${direction === "incoming" ? "&status=open" : ""}&limit=50`;
    const page = (cursor) => load(main, () => api(`${query}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`), (data) => {
      for (const r of data.items) {
        if (shown.has(r.id)) continue;
        shown.add(r.id);
        list.append(requestRow(com, direction, r));
      }
      if (!shown.size && list.isConnected) list.replaceWith(h("p", {}, t(`requests.none.${direction}`)));
      // older requests only with the server's cursor: none means this was the last page
      nextPage(more, data.nextCursor || null, page);
      main.append(more); // after the list and below any loading row
    });
    add(main, list);
    page(null);
  });
}

function requestRow(com, direction, r) {
  const c = currencyOf(com, r.currency);
  const slot = h("div");
  const text = t(direction === "incoming" ? "requests.asks" : "requests.asked",
    { who: who(direction === "incoming" ? r.payee : r.payer), amount: human(c, r.amount) });
  const item = h("li", { class: "card", "data-id": r.id }, h("p", {}, text), r.memo ? userText("p", r.memo, { class: "memo" }) : null,
    h("p", { class: "hint" }, t(`requests.status.${r.status}`)));
  if (direction === "incoming") {
    const decline = h("button", { type: "button", class: "danger" }, t("requests.decline"));
    decline.addEventListener("click", async () => {
      const out = await busy(decline, slot, () => api(`/v1/requests/${r.id}/decline`, { method: "POST" }));
      if (out !== FAILED && item.isConnected) item.replaceChildren(h("p", { role: "status" }, t("requests.declined", { text })));
    });
    add(item, h("a", { class: "button primary", href: `#/pay?request=${r.id}` }, t("requests.approve")), " ", decline);
  } else {
    add(item, h("a", { href: `#/request/${r.id}` }, t("requests.show")));
  }
  add(item, slot);
  return item;
}

export function newRequest() {
  const main = show(t("request.newTitle"));
  load(main, () => W.getCommunity(), (com) => {
    const { input: payer, extra } = addressInput("req-payer");
    const amount = h("input", { id: "req-amount", type: "text", inputmode: "decimal", required: true, autocomplete: "off" });
    const currency = h("select", { id: "req-currency" }, com.currencies.map((c) => h("option", { value: c.code }, `${c.name} (${c.code})`)));
    const memo = h("input", { id: "req-memo", type: "text", maxlength: "500" });
    const expires = h("select", { id: "req-expires" }, [[3600, "request.hour"], [86400, "request.day"], [7 * 86400, "request.week"]]
      .map(([s, k]) => h("option", { value: s, selected: s === 86400 }, t(k))));
    const slot = h("div", { id: "status" });
    const submit = h("button", { type: "submit", class: "primary" }, t("request.create"));
    add(main, h("form", { novalidate: true, onsubmit: async (e) => {
      e.preventDefault();
      const who_ = parseAddress(payer.value);
      if (!who_) return fieldError(payer, slot, "bad_address_input");
      let minor;
      try { minor = parseAmount(currencyOf(com, currency.value), amount.value); } catch (err) { return fieldError(amount, slot, err.code); }
      const memoBad = memoProblem(memo.value.trim());
      if (memoBad) return fieldError(memo, slot, memoBad);
      const gen = screen();
      const r = await busy(submit, slot, () => api("/v1/requests", { method: "POST", body: {
        payer: who_, currency: currency.value, amount: minor, memo: memo.value.trim() || null, expiresInSeconds: Number(expires.value) } }));
      if (r !== FAILED && isCurrent(gen)) location.hash = `#/request/${r.id}`;
    } },
    field(t("request.payer"), payer, t("request.payerHint")), ...extra,
    field(t("pay.currency"), currency), field(t("pay.amount"), amount, t("pay.amountHint")),
    field(t("pay.memo"), memo), field(t("request.expires"), expires), submit, slot));
  });
}

/** The payment link: the request's id only. The payer's app fetches the server's copy, so
 * the link (and its QR code) stays small and never carries the note. */
export const linkFor = (r) => `${location.origin}${location.pathname}#/pay?request=${r.id}`;

/** A request as the till shows it; the status refreshes itself until it is paid. */
export function showRequest(id) {
  const main = show(t("request.showTitle"));
  load(main, async () => [await W.getCommunity(), await api(`/v1/requests/${encodeURIComponent(id)}`)], ([com, r]) => {
    const c = currencyOf(com, r.currency);
    const link = linkFor(r);
    const status = h("p", { id: "request-status", role: "status", "aria-live": "polite" }, t(`requests.status.${r.status}`));
    const copy = h("button", { type: "button", onclick: async () => {
      try { await navigator.clipboard.writeText(link); copy.textContent = t("request.copied"); } catch { linkInput.select(); }
    } }, t("request.copy"));
    const linkInput = h("input", { id: "request-link", type: "text", readonly: true, value: link });
    add(main, h("p", { class: "big" }, t("requests.asked", { who: who(r.payer), amount: human(c, r.amount) })),
      r.memo ? userText("p", r.memo, { class: "memo" }) : null,
      h("div", { class: "qr", html: qrSvg(link, t("request.qrLabel")) }),
      field(t("request.link"), linkInput), copy, status);
    const gen = screen();
    const poll = setInterval(async () => {
      if (!isCurrent(gen)) return clearInterval(poll);
      try {
        const now = await api(`/v1/requests/${encodeURIComponent(id)}`);
        if (!isCurrent(gen)) return clearInterval(poll);
        status.textContent = t(`requests.status.${now.status}`);
        if (now.status !== "open") {
          clearInterval(poll);
          if (now.paidSeq) status.append(" ", h("a", { href: `#/tx/${now.paidSeq}` }, t("request.seePayment")));
        }
      } catch { /* a slow or lost connection: try again at the next tick */ }
    }, 4000);
  });
}
