// Paying a member of an allied cooperative (docs/federation.md): the alliance's rate shown
// before anything is signed, both amounts in the signed document, the outcome, the receipt.
import { h, add, show, field, fieldError, busy, FAILED, errorBox, short, screen, isCurrent, userText } from "../ui.js";
import { t, human } from "../i18n.js";
import { api } from "../api.js";
import * as W from "../wallet.js";
import { parseAddress } from "../crypto.js";
import { parseAmount, formatAmount } from "../amounts.js";
import { nameOf } from "../contacts.js";
import { memoProblem } from "../text.js";
import { allianceWith, crossings, deliveredFor, amountFor } from "../remote.js";
import { load } from "./money.js";

const when = (ms) => new Date(ms).toLocaleString();
const currencyOf = (com, code) => com.currencies.find((c) => c.code === code) || { code, style: "decimal", decimals: 0 };
const who = (address) => nameOf(address) || short(address);
export const shortId = (id) => `${id.slice(0, 8)}…${id.slice(-4)}`;

/** An amount in the other cooperative's currency. Its currency list is not this node's: a code
 * this community also has is shown in its format here, otherwise as minor units. */
export function thereText(com, code, minor) {
  const c = com.currencies.find((x) => x.code === code);
  return c ? human(c, minor) : t("remote.minorUnits", { n: minor, code });
}

async function alliances() {
  try {
    return (await api("/v1/federation/alliances")).items;
  } catch (err) {
    if (err.code === "not_found") return []; // this node takes no part in a federation
    throw err;
  }
}

/** #/pay?to=…&community=…[&currency=…&amount=…]: the form, pre-filled from the link. */
export function payRemote(main, com, p) {
  load(main, alliances, (items) => {
    const alliance = allianceWith(items, p.community);
    if (!alliance) {
      return add(main, errorBox({ code: "unknown_alliance" }), h("a", { class: "button", href: "#/" }, t("common.home")));
    }
    const options = crossings(alliance).filter((x) => com.currencies.some((c) => c.code === x.here));
    if (!options.length) return add(main, errorBox({ code: "unknown_currency" }));
    const wanted = options.find((x) => x.there === p.currency) || options[0];
    const to = h("input", { id: "pay-to", type: "text", autocomplete: "off", spellcheck: "false", required: true, value: p.to || "" });
    const currency = h("select", { id: "pay-currency" }, options.map((x) => h("option", { value: x.here },
      `${currencyOf(com, x.here).name || x.here} (${x.here}) → ${x.there}`)));
    currency.value = wanted.here;
    const crossing = () => options.find((x) => x.here === currency.value);
    const amount = h("input", { id: "pay-amount", type: "text", inputmode: "decimal", required: true, autocomplete: "off" });
    if (p.amount && p.currency === wanted.there) {
      try { amount.value = formatAmount(currencyOf(com, wanted.here), amountFor(p.amount, wanted)); } catch { /* too large: left empty */ }
    }
    const quote = h("p", { class: "notice", id: "remote-quote", "aria-live": "polite" });
    const requested = p.amount && p.currency ? h("p", { class: "hint", id: "remote-requested" },
      t("remote.requested", { amount: thereText(com, p.currency, p.amount) })) : null;
    const update = () => {
      const x = crossing();
      let minor = null;
      try { minor = parseAmount(currencyOf(com, x.here), amount.value); } catch { /* shown on submit */ }
      const rate = t("remote.rate", { here: `${x.unitsHere} ${x.here}`, there: `${x.unitsThere} ${x.there}` });
      let delivered = null;
      try { delivered = minor ? deliveredFor(minor, x) : null; } catch { /* too large */ }
      quote.textContent = delivered ? `${t("remote.quote", { amount: thereText(com, x.there, delivered) })} ${rate}` : rate;
    };
    amount.addEventListener("input", update);
    currency.addEventListener("change", update);
    update();
    const memo = h("input", { id: "pay-memo", type: "text", maxlength: "500" });
    const slot = h("div", { id: "status" });
    add(main, h("p", { class: "notice", id: "remote-community" }, t("remote.intro", { community: shortId(p.community) }),
      " ", h("code", { class: "address" }, alliance.peerUrl)),
    requested,
    h("form", { novalidate: true, onsubmit: (e) => {
      e.preventDefault();
      const payee = parseAddress(to.value);
      if (!payee) return fieldError(to, slot, "bad_address_input");
      const x = crossing();
      let minor, delivered;
      try { minor = parseAmount(currencyOf(com, x.here), amount.value); delivered = deliveredFor(minor, x); } catch (err) { return fieldError(amount, slot, err.code); }
      if (delivered < 1) return fieldError(amount, slot, "rate_mismatch");
      const memoBad = memoProblem(memo.value.trim());
      if (memoBad) return fieldError(memo, slot, memoBad);
      confirmRemote({ alliance, payeeCommunity: p.community, payee, currency: x.here, amount: minor, payeeCurrency: x.there,
        delivered, crossing: x, memo: memo.value.trim() });
    } },
    field(t("remote.to"), to, t("remote.toHint")),
    field(t("remote.currency"), currency),
    field(t("remote.amount"), amount, t("pay.amountHint")), quote,
    field(t("pay.memo"), memo, t("remote.memoHint")),
    h("button", { type: "submit", class: "primary" }, t("pay.review")), slot));
  });
}

function confirmRemote(intent) {
  const main = show(t("confirm.title"));
  load(main, async () => [await W.getCommunity(), await W.remoteTransferDocument(intent)], ([com, prepared]) => {
    const gen = screen();
    const m = prepared.doc.message;
    const d = prepared.doc.domain;
    const row = (k, v) => [h("dt", {}, k), h("dd", {}, v)];
    const slot = h("div", { id: "status" });
    const go = h("button", { type: "button", class: "primary", id: "sign-and-pay" }, t("confirm.sign"));
    let sent = false;
    go.addEventListener("click", async () => {
      if (sent) return;
      const res = await busy(go, slot, () => W.signAndPostRemote(prepared), t("confirm.sending"));
      if (res === FAILED) return;
      sent = true;
      go.disabled = true;
      if (isCurrent(gen)) location.hash = `#/remote/${res.paymentId || prepared.paymentId}?new=1`;
    });
    const x = intent.crossing;
    add(main,
      h("p", { class: "summary", id: "confirm-summary" }, t("remote.summary", {
        amount: human(currencyOf(com, m.currency), m.amount), who: who(m.payee),
        delivered: thereText(com, m.payeeCurrency, m.delivered), community: shortId(m.payeeCommunity) })),
      h("p", { class: "hint", id: "confirm-rate" }, t("remote.rate", { here: `${x.unitsHere} ${x.here}`, there: `${x.unitsThere} ${x.there}` })),
      prepared.memo ? h("p", {}, t("confirm.memo"), " ", userText("span", prepared.memo, { class: "memo", id: "confirm-memo" })) : null,
      h("h2", {}, t("confirm.exact")),
      h("dl", { class: "exact", id: "typed-data" },
        row("payer", m.payer), row("payeeCommunity", m.payeeCommunity), row("payee", m.payee),
        row("currency", m.currency), row("amount", `${m.amount} (${formatAmount(currencyOf(com, m.currency), m.amount)})`),
        row("payeeCurrency", m.payeeCurrency), row("delivered", String(m.delivered)), row("nonce", m.nonce),
        row("validUntil", `${m.validUntil} (${when(Number(m.validUntil) * 1000)})`), row("memoHash", m.memoHash),
        row("domain", `${d.name} v${d.version}, chainId ${d.chainId}, salt ${d.salt}`)),
      h("p", { class: "hint" }, t("remote.explain")),
      go, " ", h("a", { class: "button", href: "#/" }, t("common.cancel")), slot);
  });
}

/** #/remote/<paymentId>: the member's receipt of a remote payment, with its state now. */
export function remotePayment(paymentId, params) {
  const me = W.current().address;
  const main = show(t("remote.receiptTitle"));
  if (!/^0x[0-9a-f]{64}$/.test(paymentId || "")) return add(main, errorBox({ code: "bad_link" }));
  load(main, async () => [await W.getCommunity(), await api(`/v1/accounts/${me}/remote-payments/${paymentId}`)], ([com, tx]) => {
    const r = tx.remote;
    const row = (k, v, attrs = {}) => [h("dt", {}, k), h("dd", attrs, v)];
    const incoming = tx.direction === "in";
    if (params.get("new") && r.status === "completed") add(main, h("p", { class: "success", role: "status" }, t("remote.done")));
    if (params.get("new") && r.status === "pending") add(main, h("p", { class: "notice", role: "status" }, t("remote.sent")));
    add(main, h("dl", { class: "exact", id: "remote-receipt", "data-status": r.status },
      row(t("remote.state"), t(`remote.status.${r.status}`), { id: "remote-status", class: `status ${r.status}` }),
      r.code ? row(t("remote.why"), r.code, { id: "remote-code" }) : null,
      row(t("tx.when"), when(tx.at)),
      row(t(incoming ? "tx.from" : "tx.to"), `${who(r.counterparty)} (${r.counterparty})`),
      row(t("remote.community"), `${r.community} (${r.communityUrl})`),
      row(t("remote.here"), human(currencyOf(com, tx.currency), tx.amount), { id: "remote-here" }),
      row(t("remote.there"), thereText(com, r.currency, r.amount), { id: "remote-there" }),
      tx.memo ? [h("dt", {}, t("tx.memo")), userText("dd", tx.memo, { class: "memo" })] : null,
      row(t("remote.paymentId"), r.paymentId)));
    if (r.status === "pending") {
      add(main, h("button", { type: "button", id: "remote-refresh",
        onclick: () => window.dispatchEvent(new HashChangeEvent("hashchange")) }, t("remote.refresh")));
    }
    add(main, " ", h("a", { class: "button", href: "#/history" }, t("nav.history")));
  });
}

/** One history row of a remote leg: both amounts and its state; a pending or failed one is
 * not shown as money moved. */
export function remoteRow(com, tx) {
  const r = tx.remote;
  const incoming = tx.direction === "in";
  const done = r.status === "completed";
  const sign = done ? (incoming ? "+" : "−") : "";
  return h("li", { class: `${incoming ? "in" : "out"} remote ${r.status}`, "data-payment": r.paymentId },
    h("a", { href: `#/remote/${r.paymentId}` },
      h("span", { class: "amount" }, sign + human(currencyOf(com, tx.currency), tx.amount)), " ",
      h("span", { class: "there" }, t("history.there", { amount: thereText(com, r.currency, r.amount) })), " ",
      t(incoming ? "history.remoteFrom" : "history.remoteTo", { who: who(r.counterparty), community: shortId(r.community) }),
      done ? null : [" · ", h("span", { class: `status ${r.status}` }, t(`remote.status.${r.status}`))],
      tx.memo ? [" · ", userText("span", tx.memo, { class: "memo" })] : null,
      h("span", { class: "when" }, when(tx.at))));
}
