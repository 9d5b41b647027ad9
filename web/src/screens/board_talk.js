// Conversations and arrangements: only the two parties ever see them. Either proposes an
// arrangement (what, when, time, price); the other accepts; either may cancel, with no reason
// asked and nothing counted; once accepted, the one who does the work asks for payment, which
// is an ordinary payment request linked to the arrangement: the other approves and signs it
// in the usual requests screen (#/requests -> #/pay?request=...).
import { h, add, show, field, fieldError, busy, FAILED, screen, isCurrent, userText, short } from "../ui.js";
import { t, human } from "../i18n.js";
import * as W from "../wallet.js";
import * as B from "../board_api.js";
import { load } from "./money.js";
import { parseAmount } from "../amounts.js";
import { firstRefused, memoProblem } from "../text.js";
import { nameOf } from "../contacts.js";
import { currencyOf, boardMenu, kindName, when, reload } from "./board_common.js";

const who = (address) => nameOf(address) || short(address);

export function talks() {
  const main = show(t("board.talksTitle"));
  add(main, boardMenu("#/board/talks"));
  load(main, () => B.conversations(), (data) => {
    if (!data.items.length) return add(main, h("p", {}, t("board.talksNone")));
    add(main, h("ul", { class: "talks", id: "talks" }, data.items.map((c) => {
      const other = c.you === "author" ? c.responder : c.author;
      return h("li", { class: "card", "data-id": c.id }, h("a", { href: `#/board/talk/${c.id}` },
        kindName(c.listing.kind), ": ", userText("span", c.listing.title)),
      h("p", { class: "hint" }, t("board.talkWith", { who: who(other) }), " · ", when(c.lastMessageAt)));
    })));
  });
}

export function talk(id) {
  const main = show(t("board.talkTitle"));
  add(main, boardMenu(""));
  const me = W.current().address;
  load(main, async () => {
    const [com, conv, msgs, arrs] = await Promise.all([W.getCommunity(), B.conversation(id), B.messages(id, 0), B.arrangements(id)]);
    // The listing's currency pre-fills a proposal; a listing no longer visible changes nothing.
    const listing = await B.listing(conv.listing.id).catch(() => null);
    return { com, conv, msgs, arrs, listing };
  }, ({ com, conv, msgs, arrs, listing }) => {
    const other = conv.you === "author" ? conv.responder : conv.author;
    add(main, h("p", { class: "about" }, kindName(conv.listing.kind), ": ",
      h("a", { href: `#/board/listing/${conv.listing.id}` }, userText("span", conv.listing.title))),
    h("p", { class: "hint" }, t("board.talkWith", { who: who(other) }), " ", h("code", { class: "address", id: "other-address" }, other)),
    h("p", { class: "hint" }, t("board.privateNote")));

    // messages, oldest first
    add(main, h("h2", { id: "msgs-h" }, t("board.messages")));
    add(main, msgs.items.length ? h("ol", { class: "messages", id: "messages", "aria-labelledby": "msgs-h" }, msgs.items.map((m) =>
      h("li", { class: m.from === me ? "mine" : "theirs" }, h("p", { class: "from" }, m.from === me ? t("board.you") : who(m.from), " · ", when(m.at)),
        userText("p", m.text, { class: "text" }))))
      : h("p", { class: "hint" }, t("board.noMessages")));
    const text = h("textarea", { id: "msg-text", rows: "3", maxlength: "2000" });
    const slot = h("div", { id: "msg-status" });
    const send = h("button", { type: "submit", class: "primary", id: "msg-send" }, t("board.send"));
    const refresh = h("button", { type: "button", id: "msg-refresh", onclick: reload }, t("board.refresh"));
    add(main, h("form", { novalidate: true, onsubmit: async (e) => {
      e.preventDefault();
      const value = text.value.trim();
      if (!value) return fieldError(text, slot, "board_text_missing");
      if (firstRefused(value.replace(/\n/g, " "))) return fieldError(text, slot, "board_text_bad");
      if (await busy(send, slot, () => B.send(id, value)) !== FAILED) reload();
    } }, field(t("board.message"), text), send, " ", refresh, slot));

    // arrangements
    add(main, h("h2", { id: "arr-h" }, t("board.arrangements")));
    add(main, arrs.items.length ? h("ul", { class: "arrangements", id: "arrangements" }, arrs.items.map((a) => arrangementCard(com, a, me)))
      : h("p", { class: "hint" }, t("board.noArrangements")));
    // the proposal form stays folded while an arrangement is under way
    const ongoing = arrs.items.some((a) => ["proposed", "accepted", "payment_requested"].includes(a.status));
    add(main, proposeForm(com, id, listing, conv, !ongoing));
  });
}

function arrangementCard(com, a, me) {
  const c = currencyOf(com, a.currency);
  const slot = h("div");
  const iProvide = a.provider === me;
  const button = (action, label, cls, body) => {
    const b = h("button", { type: "button", class: cls, "data-action": action }, t(label));
    b.addEventListener("click", async () => { if (await busy(b, slot, () => B.arrange(a.id, action, body)) !== FAILED) reload(); });
    return b;
  };
  const row = (k, v) => [h("dt", {}, k), h("dd", {}, v)];
  const item = h("li", { class: "card arrangement", "data-id": a.id, "data-status": a.status },
    h("p", { class: "status" }, t(`board.arr.${a.status}`)),
    h("dl", { class: "facts" },
      [h("dt", {}, t("board.what")), userText("dd", a.what)],
      a.when ? [h("dt", {}, t("board.when")), userText("dd", a.when)] : null,
      a.minutes ? row(t("board.minutes"), human(com.currencies.find((x) => x.style === "time") || { style: "time" }, a.minutes)) : null,
      row(t("board.amount"), human(c, a.amount))),
    h("p", { class: "hint" }, t(iProvide ? "board.youProvide" : "board.youReceive")));
  const acts = [];
  if (a.status === "proposed" && a.proposer !== me) acts.push(button("accept", "board.accept", "primary"));
  if (a.status === "proposed" && a.proposer === me) add(item, h("p", { class: "hint" }, t("board.waitingAccept")));
  if (a.status === "accepted" && iProvide) {
    const memo = h("input", { id: `bill-memo-${a.id}`, type: "text", maxlength: "500", autocomplete: "off" });
    const ask = h("button", { type: "submit", class: "primary", "data-action": "request-payment" }, t("board.requestPayment"));
    acts.push(h("form", { novalidate: true, class: "bill", onsubmit: async (e) => {
      e.preventDefault();
      const note = memo.value.trim();
      const bad = memoProblem(note);
      if (bad) return fieldError(memo, slot, bad);
      const gen = screen();
      const out = await busy(ask, slot, () => B.arrange(a.id, "request-payment", note ? { memo: note } : {}));
      // the ordinary request screen: its QR code and link, and its status until paid
      if (out !== FAILED && isCurrent(gen)) location.hash = `#/request/${out.request.id}`;
    } }, field(t("board.billMemo"), memo, t("board.billHint")), ask));
  }
  if (a.status === "accepted" && !iProvide) add(item, h("p", { class: "hint" }, t("board.waitingBill")));
  if (a.status === "payment_requested" && !iProvide) {
    acts.push(h("a", { class: "button primary", href: `#/pay?request=${a.requestId}`, "data-action": "pay" }, t("board.payNow")));
    add(item, h("p", { class: "hint" }, t("board.payHint")));
  }
  if (a.status === "payment_requested" && iProvide) acts.push(h("a", { class: "button", href: `#/request/${a.requestId}` }, t("board.seeRequest")));
  if (["proposed", "accepted", "payment_requested"].includes(a.status)) acts.push(button("cancel", "board.cancel", "danger"));
  if (acts.length) add(item, h("div", { class: "actions" }, acts.flatMap((x) => [x, " "])));
  if (a.status === "cancelled") add(item, h("p", { class: "hint" }, t("board.cancelledHint")));
  // docs/exchange.md shows a list; the API sends one note or null: take either
  const thanks = [].concat(a.thanksReceived || []).filter(Boolean);
  if (thanks.length) add(item, h("h3", {}, t("board.thanksReceived")), thanks.map((x) => userText("p", x, { class: "thanks" })));
  if (a.status === "accepted" || a.status === "paid") {
    const note = h("input", { id: `thanks-${a.id}`, type: "text", maxlength: "500", autocomplete: "off" });
    const go = h("button", { type: "submit" }, t("board.thank"));
    add(item, h("details", {}, h("summary", {}, t("board.thankTitle")), h("form", { novalidate: true, onsubmit: async (e) => {
      e.preventDefault();
      const value = note.value.trim();
      if (!value) return fieldError(note, slot, "board_text_missing");
      if (firstRefused(value)) return fieldError(note, slot, "board_text_bad");
      if (await busy(go, slot, () => B.arrange(a.id, "thanks", { text: value })) !== FAILED) {
        note.value = "";
        slot.replaceChildren(h("p", { role: "status" }, t("board.thanked")));
      }
    } }, field(t("board.thankLabel"), note, t("board.thankHint")), go)));
  }
  add(item, slot);
  return item;
}

function proposeForm(com, convId, listing, conv, open) {
  const what = h("input", { id: "arr-what", type: "text", maxlength: "300", autocomplete: "off", value: listing ? listing.title.slice(0, 300) : conv.listing.title.slice(0, 300) });
  const whenText = h("input", { id: "arr-when", type: "text", maxlength: "300", autocomplete: "off" });
  const currency = h("select", { id: "arr-currency" }, com.currencies.map((c) => h("option", { value: c.code }, `${c.name} (${c.code})`)));
  if (listing && com.currencies.some((c) => c.code === listing.currency)) currency.value = listing.currency;
  const amount = h("input", { id: "arr-amount", type: "text", inputmode: "decimal", autocomplete: "off" });
  const minutes = h("input", { id: "arr-minutes", type: "text", autocomplete: "off" });
  const slot = h("div", { id: "arr-status" });
  const submit = h("button", { type: "submit", class: "primary", id: "arr-propose" }, t("board.propose"));
  const time = com.currencies.find((c) => c.style === "time") || { style: "time", code: "HOUR" };
  return h("details", { class: "propose", id: "propose", open }, h("summary", {}, t("board.proposeTitle")),
    h("form", { novalidate: true, id: "propose-form", onsubmit: async (e) => {
      e.preventDefault();
      const body = { what: what.value.trim(), currency: currency.value };
      if (!body.what) return fieldError(what, slot, "board_text_missing");
      if (firstRefused(body.what)) return fieldError(what, slot, "board_text_bad");
      if (whenText.value.trim()) {
        if (firstRefused(whenText.value.trim())) return fieldError(whenText, slot, "board_text_bad");
        body.when = whenText.value.trim();
      }
      try { body.amount = parseAmount(currencyOf(com, currency.value), amount.value); } catch (err) { return fieldError(amount, slot, err.code); }
      if (minutes.value.trim()) {
        try { body.minutes = parseAmount(time, minutes.value); } catch (err) { return fieldError(minutes, slot, err.code); }
      }
      if (await busy(submit, slot, () => B.propose(convId, body)) !== FAILED) reload();
    } }, h("p", { class: "hint" }, t("board.proposeIntro")),
    field(t("board.what"), what), field(t("board.when"), whenText, t("board.whenHint")),
    field(t("pay.currency"), currency), field(t("board.amount"), amount, t("pay.amountHint")),
    field(t("board.minutes"), minutes, t("board.minutesHint")), submit, slot));
}
