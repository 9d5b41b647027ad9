// Balances, paying (form -> exact confirmation -> sign in the browser -> receipt), history.
import { h, add, show, field, fieldError, busy, FAILED, loading, errorBox, short, screen, isCurrent, userText, nextPage } from "../ui.js";
import { t, human } from "../i18n.js";
import { api } from "../api.js";
import * as W from "../wallet.js";
import { parseAddress } from "../crypto.js";
import { parseAmount, formatAmount } from "../amounts.js";
import { contacts, saveContact, nameOf } from "../contacts.js";
import { qrSvg } from "../qr.js";
import { payLink, payLinkHash, payParams, REQUEST_ID } from "../links.js";
import { memoProblem, memoToCopy } from "../text.js";
import { payRemote, remoteRow } from "./remote.js";
import { refundNote } from "./shop.js";

const who = (address) => nameOf(address) || short(address);
const when = (ms) => new Date(ms).toLocaleString();
const currencyOf = (com, code) => com.currencies.find((c) => c.code === code) || { code, style: "decimal", decimals: 0 };

/** Load data behind a visible loading state; on failure show the reason and a retry.
 * An answer that arrives after the member moved to another screen is dropped. */
export async function load(main, work, render) {
  const gen = screen();
  const slot = loading();
  add(main, slot);
  let data;
  try {
    data = await work();
  } catch (err) {
    if (isCurrent(gen)) slot.replaceWith(errorBox(err), h("button", { type: "button", onclick: () => window.dispatchEvent(new HashChangeEvent("hashchange")) }, t("common.retry")));
    return;
  }
  if (!isCurrent(gen)) return;
  slot.remove();
  render(data);
}

export function home() {
  const me = W.current().address;
  const main = show(t("home.title"));
  load(main, async () => Promise.all([W.getCommunity(), api(`/v1/accounts/${me}`),
    api("/v1/requests?direction=incoming&status=open&limit=50")]), ([com, acct, reqs]) => {
    const cards = acct.balances.map((b) => {
      const c = currencyOf(com, b.currency);
      return h("section", { class: "card balance", "aria-label": c.name, "data-currency": b.currency },
        h("h2", {}, `${c.name} (${c.code})`),
        h("p", { class: "big" }, t("home.balance", { amount: human(c, b.balance) })),
        h("p", { class: "can-spend" }, t("home.canSpend", { amount: human(c, b.canSpend) })),
        h("p", { class: "hint" }, t("home.limit", { amount: human(c, b.creditLimit) })));
    });
    add(main, ...(cards.length ? cards : [h("p", {}, t("home.noBalances"))]));
    if (reqs.items.length) {
      // one page is enough for a count: past it, "more than 50" (the requests screen pages)
      const count = t(reqs.nextCursor ? "home.manyRequests" : "home.openRequests", { n: reqs.items.length });
      add(main, h("p", { class: "notice" }, h("a", { href: "#/requests", id: "open-requests" }, count)));
    }
    add(main, h("p", { class: "actions" }, h("a", { class: "button primary", href: "#/pay" }, t("nav.pay")),
      " ", h("a", { class: "button", href: "#/request/new" }, t("nav.request"))));
    add(main, h("details", {}, h("summary", {}, t("home.myAddress")),
      h("p", {}, h("code", { class: "address", id: "my-address" }, me)),
      h("div", { class: "qr", html: qrSvg(me, t("keys.addressQr")) })), payMeLink(com, me));
  });
}

/** A link (and QR code) to pay this member, optionally an amount: it names this community, so
 * a member of an allied cooperative can pay it from their own app (docs/web.md). */
function payMeLink(com, me) {
  const currency = h("select", { id: "link-currency" }, com.currencies.map((c) => h("option", { value: c.code }, `${c.name} (${c.code})`)));
  const amount = h("input", { id: "link-amount", type: "text", inputmode: "decimal", autocomplete: "off" });
  const link = h("input", { id: "my-pay-link", type: "text", readonly: true });
  const qr = h("div", { class: "qr" });
  const slot = h("div");
  const update = () => {
    let minor = null;
    slot.replaceChildren();
    if (amount.value.trim()) {
      try { minor = parseAmount(currencyOf(com, currency.value), amount.value); } catch (err) { slot.replaceChildren(errorBox(err)); }
    }
    link.value = payLink(`${location.origin}${location.pathname}`, { to: me, community: com.domain.salt,
      currency: minor ? currency.value : null, amount: minor });
    qr.innerHTML = qrSvg(link.value, t("home.payLinkQr"));
  };
  amount.addEventListener("input", update);
  currency.addEventListener("change", update);
  update();
  return h("details", { id: "pay-me" }, h("summary", {}, t("home.payLink")), h("p", { class: "hint" }, t("home.payLinkHint")),
    field(t("pay.currency"), currency), field(t("pay.amount"), amount, t("pay.amountHint")), slot,
    field(t("request.link"), link), qr);
}

/** An address input with the contacts as suggestions and, where the browser can, a scanner. */
export function addressInput(id, value) {
  const input = h("input", { id, type: "text", list: `${id}-contacts`, autocomplete: "off", spellcheck: "false",
    required: true, value: value || "", inputmode: "text" });
  const list = h("datalist", { id: `${id}-contacts` }, contacts().map((c) => h("option", { value: c.address, label: c.name })));
  const extra = [list];
  if ("BarcodeDetector" in window && navigator.mediaDevices) {
    extra.push(h("button", { type: "button", id: `${id}-scan`, onclick: () => scan(input) }, t("pay.scan")));
  }
  return { input, extra };
}

async function scan(input) {
  // Uses the browser's own QR decoder (no library download on a slow link).
  const video = h("video", { playsinline: true, "aria-label": t("pay.scanning") });
  const dialog = h("dialog", {}, video, h("button", { type: "button", onclick: () => stop() }, t("common.cancel")));
  document.body.append(dialog);
  let stream, done = false;
  const gen = screen();
  const stop = () => { done = true; stream && stream.getTracks().forEach((tr) => tr.stop()); dialog.remove(); };
  try {
    stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" } });
    dialog.showModal();
    video.srcObject = stream;
    await video.play();
    const detector = new window.BarcodeDetector({ formats: ["qr_code"] });
    while (!done) {
      const codes = await detector.detect(video);
      if (codes.length) {
        const text = codes[0].rawValue;
        stop();
        if (!isCurrent(gen)) return;
        // Only a link to this app is followed (by its hash); anything else is an address.
        const link = payLinkHash(text, location.origin);
        if (link) { location.hash = link; return; }
        input.value = parseAddress(text) || "";
        if (!input.value) alert(t("pay.scanNotAddress"));
        return;
      }
      await new Promise((r) => setTimeout(r, 250));
    }
  } catch (err) {
    stop();
    alert(t("pay.scanFailed"));
  }
}

export function pay(params) {
  const main = show(t("pay.title"));
  if (params.has("request")) return payRequest(main, params.get("request"));
  load(main, () => W.getCommunity(), (com) => {
    // A link may pre-fill the payee, currency and amount (strictly parsed; a note never:
    // the member writes their own).
    const p = payParams(params, com.currencies);
    if (p.community === "invalid") return add(main, errorBox({ code: "bad_link" }));
    // the payee is a member of another community: an allied one, paid at the alliance's rate
    if (p.community && p.community !== String(com.domain.salt).toLowerCase()) return payRemote(main, com, p);
    if (p.currency && !com.currencies.some((c) => c.code === p.currency)) delete p.currency;
    const { input: to, extra } = addressInput("pay-to", p.to);
    const amount = h("input", { id: "pay-amount", type: "text", inputmode: "decimal", required: true, autocomplete: "off" });
    const currency = h("select", { id: "pay-currency" }, com.currencies.map((c) => h("option", { value: c.code }, `${c.name} (${c.code})`)));
    if (p.currency) currency.value = p.currency;
    const c0 = () => currencyOf(com, currency.value);
    if (p.amount) amount.value = formatAmount(c0(), p.amount);
    const memo = h("input", { id: "pay-memo", type: "text", maxlength: "500" });
    const name = h("input", { id: "pay-save-name", type: "text", autocomplete: "off" });
    const slot = h("div", { id: "status" });
    const submit = h("button", { type: "submit", class: "primary" }, t("pay.review"));
    add(main, h("form", { novalidate: true, onsubmit: (e) => {
      e.preventDefault();
      const payee = parseAddress(to.value);
      // a pasted payment link (this app's, or an allied cooperative's naming its community)
      const link = payee ? null : payLinkHash(to.value, location.origin);
      if (link) { location.hash = link; return; }
      if (!payee) return fieldError(to, slot, "bad_address_input");
      let minor;
      try { minor = parseAmount(c0(), amount.value); } catch (err) { return fieldError(amount, slot, err.code); }
      if (payee === W.current().address) return fieldError(to, slot, "same_payer_payee");
      const memoBad = memoProblem(memo.value.trim());
      if (memoBad) return fieldError(memo, slot, memoBad);
      if (name.value.trim()) saveContact(name.value, payee);
      confirmTransfer({ payee, currency: currency.value, amount: minor, memo: memo.value.trim() });
    } },
    field(t("pay.to"), to, t("pay.toHint")), ...extra,
    field(t("pay.currency"), currency),
    field(t("pay.amount"), amount, t("pay.amountHint")),
    field(t("pay.memo"), memo, t("pay.memoHint")),
    nameOf(parseAddress(to.value) || "") ? null : field(t("pay.saveAs"), name, t("pay.saveAsHint")),
    submit, slot));
  });
}

function payRequest(main, id) {
  if (!REQUEST_ID.test(id)) return add(main, errorBox({ code: "bad_link" }));
  load(main, () => api(`/v1/requests/${encodeURIComponent(id)}`), (r) => {
    if (r.payer !== W.current().address) {
      return add(main, errorBox({ code: "request_not_yours" }));
    }
    if (r.status !== "open") {
      return add(main, errorBox({ code: `request_status_${r.status}` }), h("a", { href: "#/" }, t("common.home")));
    }
    confirmTransfer({ payee: r.payee, currency: r.currency, amount: r.amount, memo: memoToCopy(r.memo), requestId: r.id, request: r });
  });
}

function confirmTransfer(intent) {
  const main = show(t("confirm.title"));
  load(main, async () => [await W.getCommunity(), await W.transferDocument(intent)], ([com, prepared]) => {
    // `prepared` is this screen's own document: the button signs exactly what is shown here.
    const gen = screen();
    const m = prepared.doc.message;
    const c = currencyOf(com, m.currency);
    const d = prepared.doc.domain;
    const row = (k, v) => [h("dt", {}, k), h("dd", {}, v)];
    const slot = h("div", { id: "status" });
    const go = h("button", { type: "button", class: "primary", id: "sign-and-pay" }, t("confirm.sign"));
    let sent = false;
    go.addEventListener("click", async () => {
      if (sent) return;
      const res = await busy(go, slot, () => W.signAndPost(prepared), t("confirm.sending"));
      if (res === FAILED) return;
      sent = true;
      go.disabled = true;
      if (isCurrent(gen)) location.hash = `#/tx/${res.seq}?new=1`;
    });
    const known = nameOf(m.payee);
    const shownMemo = prepared.memo || (intent.request && intent.request.memo) || "";
    add(main,
      intent.request ? h("p", { class: "notice" }, t("confirm.forRequest", { who: who(intent.request.payee) })) : null,
      h("p", { class: "summary", id: "confirm-summary" }, t("confirm.summary",
        { amount: human(c, m.amount), who: known || short(m.payee) })),
      known ? null : h("p", { class: "notice", id: "payee-unknown" }, t("confirm.notContact"), " ",
        h("code", { class: "address" }, m.payee)),
      // the request's own note is shown even when it is not copied into the payment (an older
      // note the text rule now refuses): through userText, so its controls show as escapes
      shownMemo ? h("p", {}, t("confirm.memo"), " ", userText("span", shownMemo, { class: "memo", id: "confirm-memo" })) : null,
      h("h2", {}, t("confirm.exact")),
      h("dl", { class: "exact", id: "typed-data" },
        row("payer", m.payer), row("payee", m.payee), row("currency", m.currency),
        row("amount", `${m.amount} (${formatAmount(c, m.amount)})`), row("nonce", m.nonce),
        row("validUntil", `${m.validUntil} (${when(Number(m.validUntil) * 1000)})`),
        row("memoHash", m.memoHash), row("requestId", m.requestId),
        row("domain", `${d.name} v${d.version}, chainId ${d.chainId}, salt ${d.salt}`)),
      h("p", { class: "hint" }, t("confirm.explain")),
      go, " ", h("a", { class: "button", href: "#/" }, t("common.cancel")), slot);
  });
}

export function transfer(seq, params) {
  const main = show(t("tx.title", { seq }));
  load(main, async () => [await W.getCommunity(), await api(`/v1/transfers/${seq}`)], ([com, tx]) => {
    const c = currencyOf(com, tx.currency);
    const row = (k, v) => [h("dt", {}, k), h("dd", {}, v)];
    if (params.get("new")) add(main, h("p", { class: "success", role: "status" }, t("tx.done")));
    add(main, h("dl", { class: "exact", id: "receipt" },
      row(t("tx.when"), when(tx.at)),
      row(t(tx.direction === "in" ? "tx.from" : "tx.to"), `${who(tx.direction === "in" ? tx.payer : tx.payee)} (${tx.direction === "in" ? tx.payer : tx.payee})`),
      row(t("tx.amount"), human(c, tx.amount)),
      refundNote(c, tx) ? [h("dt", {}, t("shop.refund")), h("dd", { id: "refund-link" }, refundNote(c, tx),
        [tx.refundOf, ...(tx.refunds || []).map((r) => r.seq)].filter(Boolean).map((n) => [" ", h("a", { href: `#/tx/${n}` }, `#${n}`)]))] : null,
      tx.memo ? [h("dt", {}, t("tx.memo")), userText("dd", tx.memo, { class: "memo" })] : null,
      row(t("tx.digest"), tx.digest)));
    const anchor = h("section", { class: "card", "aria-labelledby": "anchor-h" }, h("h2", { id: "anchor-h" }, t("tx.anchoring")));
    add(main, anchor);
    load(anchor, () => api(`/v1/receipts/${seq}`).catch((err) => ({ error: err })), (r) => {
      if (r.error) {
        const key = r.error.code === "not_anchored" ? "tx.notAnchoredYet" : r.error.code === "not_found" ? "tx.noAnchoring" : null;
        return add(anchor, key ? h("p", { id: "anchor-status" }, t(key)) : errorBox(r.error));
      }
      const file = new Blob([JSON.stringify(r, null, 2)], { type: "application/json" });
      add(anchor, h("p", { id: "anchor-status" }, t("tx.anchored", { first: r.batch.firstSeq, last: r.batch.lastSeq, chain: r.chainId })),
        h("p", {}, h("code", {}, r.txHash)),
        h("a", { class: "button", download: `ayni-receipt-${seq}.json`, href: URL.createObjectURL(file) }, t("tx.download")));
    });
  });
}

export function history(params) {
  const main = show(t("history.title"));
  const me = W.current().address;
  const list = h("ol", { class: "history", id: "history" });
  const more = h("button", { type: "button", id: "older", hidden: true }, t("history.older"));
  const shown = new Set(); // a row is never listed twice, whatever a page returns
  const page = (com, cursor) => load(main, () => api(`/v1/accounts/${me}/history?limit=10${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`), (data) => {
    for (const tx of data.items) {
      const key = tx.remote ? tx.remote.paymentId : String(tx.seq);
      if (shown.has(key)) continue;
      shown.add(key);
      if (tx.remote) { list.append(remoteRow(com, tx)); continue; }
      const c = currencyOf(com, tx.currency);
      const incoming = tx.direction === "in";
      list.append(h("li", { class: incoming ? "in" : "out" }, h("a", { href: `#/tx/${tx.seq}` },
        h("span", { class: "amount" }, (incoming ? "+" : "−") + human(c, tx.amount)), " ",
        t(incoming ? "history.from" : "history.to", { who: who(incoming ? tx.payer : tx.payee) }),
        tx.memo ? [" · ", userText("span", tx.memo, { class: "memo" })] : null,
        refundNote(c, tx) ? [" · ", h("span", { class: "refund-note" }, refundNote(c, tx))] : null,
        h("span", { class: "when" }, when(tx.at)))));
    }
    if (!list.children.length && list.isConnected) list.replaceWith(h("p", { id: "history-empty" }, t("history.empty")));
    // the next page only with the server's cursor: none means this was the last page
    nextPage(more, data.nextCursor || null, (cursor) => page(com, cursor));
    main.append(more); // after the list and below any loading row
  });
  add(main, list);
  load(main, () => W.getCommunity(), (com) => page(com, null));
}
