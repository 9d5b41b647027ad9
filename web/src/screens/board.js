// The exchange board (docs/exchange.md): browse offers and needs with filters, in one of the
// two orders the API knows (newest, or today's shuffle: the same for everyone all day), and
// answer a listing, which opens a private conversation with its author. Nothing here ranks,
// counts or scores anyone, and a search result never says who posted it.
import { h, add, show, field, busy, FAILED, screen, isCurrent, userText, loading, errorBox } from "../ui.js";
import { t } from "../i18n.js";
import * as W from "../wallet.js";
import { api } from "../api.js";
import * as B from "../board_api.js";
import { load } from "./money.js";
import { listingCard, boardMenu, categoryName, kindName, priceText, slotText, day, reload } from "./board_common.js";
import { postListing, editListing, myListings, ownListing } from "./board_post.js";
import { talks, talk } from "./board_talk.js";

/** #/board/... : the board's own little router. */
export function board(parts, params) {
  switch (parts[0]) {
    case undefined: return browse(params);
    case "new": return postListing();
    case "mine": return myListings();
    case "edit": return editListing(parts[1]);
    case "listing": return showListing(parts[1]);
    case "talks": return talks();
    case "talk": return talk(parts[1]);
    default: return browse(params);
  }
}

/** The filters as the hash carries them; anything else (an unknown order) is dropped. */
function filtersOf(params) {
  const f = {};
  for (const k of B.FILTERS) if (params.get(k)) f[k] = params.get(k).slice(0, 200);
  if (f.order && !B.ORDERS.includes(f.order)) delete f.order;
  if (f.kind && !["offer", "need"].includes(f.kind)) delete f.kind;
  return f;
}

/** The rule the API applies, in plain words and then exactly as the cooperative's data policy
 * states it (GET /v1/data-policy, read when the member opens the explanation). */
function purposeNote() {
  const exact = h("div", { id: "board-policy" });
  const box = h("details", { class: "purpose", id: "board-purpose" },
    h("summary", {}, t("board.purposeTitle")),
    h("p", {}, t("board.purposeRule")), h("p", {}, t("board.purposeNotLogged")), h("p", {}, t("board.noRanking")),
    exact, h("p", {}, h("a", { href: "#/privacy" }, t("board.purposeMore"))));
  box.addEventListener("toggle", () => {
    if (!box.open || exact.childNodes.length) return;
    load(exact, () => api("/v1/data-policy"), (policy) => {
      const p = (policy.purposes || []).find((x) => x.id === B.PURPOSE);
      if (!p) return;
      add(exact, h("p", {}, t("board.policySays")),
        h("dl", { class: "facts" }, h("dt", {}, t("board.policyPurpose")), h("dd", {}, h("code", {}, p.id)),
          h("dt", {}, t("board.policyRoles")), h("dd", {}, h("code", {}, p.roles.join(", "))),
          h("dt", {}, t("board.policyCategories")), h("dd", {}, h("code", {}, p.categories.join(", ")))),
        userText("p", p.description, { class: "hint" }));
    });
  });
  return box;
}

function browse(params) {
  const f = filtersOf(params);
  const main = show(t("board.title"));
  add(main, boardMenu("#/board"));
  load(main, async () => Promise.all([W.getCommunity(), B.boardConfig()]), ([com, cfg]) => {
    const any = (label) => h("option", { value: "" }, label);
    const select = (id, options, value) => {
      const s = h("select", { id }, options);
      s.value = value || "";
      return s;
    };
    const kind = select("board-kind", [any(t("board.anyKind")), ...cfg.kinds.map((k) => h("option", { value: k }, t(`board.kinds.${k}`)))], f.kind);
    const category = select("board-category", [any(t("board.anyCategory")), ...cfg.categories.map((c) => h("option", { value: c.id }, categoryName(c.id, c.label)))], f.category);
    const area = select("board-area", [any(t("board.anyArea")), ...cfg.areas.map((a) => h("option", { value: a.id }, a.label))], f.area);
    const currency = select("board-currency", [any(t("board.anyCurrency")), ...cfg.currencies.map((c) => h("option", { value: c }, c))], f.currency);
    const q = h("input", { id: "board-q", type: "search", maxlength: "200", value: f.q || "", autocomplete: "off" });
    const order = select("board-order", B.ORDERS.map((o) => h("option", { value: o }, t(`board.order.${o}`))), f.order || "newest");
    const submit = h("button", { type: "submit", class: "primary", id: "board-search" }, t("board.search"));
    add(main, h("form", { class: "filters", role: "search", novalidate: true, onsubmit: (e) => {
      e.preventDefault();
      const next = `#/board${B.query({ kind: kind.value, category: category.value, area: area.value, currency: currency.value,
        q: q.value.trim(), order: order.value === "newest" ? "" : order.value })}`;
      if (location.hash === next) reload(); else location.hash = next;
    } },
    field(t("board.text"), q, t("board.textHint")),
    field(t("board.kind"), kind), field(t("board.category"), category), field(t("board.area"), area),
    field(t("board.currency"), currency), field(t("board.orderLabel"), order, t("board.orderHint")), submit));
    add(main, purposeNote());
    const list = h("ul", { class: "listings", id: "listings", "aria-label": t("board.results") });
    const more = h("button", { type: "button", id: "board-more", hidden: true }, t("board.more"));
    const status = h("div");
    add(main, h("h2", { id: "results-h" }, t("board.results")), status, list, more);
    const page = async (cursor) => {
      const gen = screen();
      status.replaceChildren(loading());
      let data;
      try { data = await B.search(f, cursor); } catch (err) {
        if (isCurrent(gen)) status.replaceChildren(errorBox(err));
        return;
      }
      if (!isCurrent(gen)) return;
      status.replaceChildren();
      for (const item of data.items) list.append(listingCard(com, item));
      if (!list.children.length) status.replaceChildren(h("p", { id: "board-empty" }, t("board.none")));
      if (data.order === "shuffle") status.append(h("p", { class: "hint" }, t("board.shuffleToday")));
      more.hidden = !data.nextCursor;
      more.onclick = () => { more.hidden = true; page(data.nextCursor); };
    };
    page(null);
  });
}

/** One listing: another member's (answer it) or your own (manage it, see why it was hidden). */
function showListing(id) {
  const main = show(t("board.listingTitle"));
  add(main, boardMenu(""));
  load(main, async () => Promise.all([W.getCommunity(), B.listing(id)]), ([com, item]) => {
    if (item.mine) return ownListing(main, com, item);
    const row = (k, v) => [h("dt", {}, k), h("dd", {}, v)];
    add(main, h("article", { class: "card listing", id: "listing", "data-id": item.id },
      h("p", { class: "tag" }, kindName(item.kind)),
      h("h2", {}, userText("span", item.title)),
      item.description ? userText("p", item.description, { class: "description" }) : null,
      h("dl", { class: "facts" },
        row(t("board.category"), categoryName(item.category, item.categoryLabel)),
        row(t("board.area"), item.areaLabel || item.area),
        row(t("board.priceLabel"), priceText(com, item)),
        item.availability ? [h("dt", {}, t("board.availability")), userText("dd", item.availability)] : null,
        item.slots && item.slots.length ? row(t("board.slots"), slotText(item.slots)) : null,
        row(t("board.until"), day(item.expiresAt)))));
    // "I can help" on a need, "I'm interested" on an offer: the first message opens (or
    // continues) a private conversation with the author.
    const verb = item.kind === "need" ? "board.canHelp" : "board.interested";
    const text = h("textarea", { id: "answer-text", rows: "4", maxlength: "2000", required: true });
    const slot = h("div", { id: "status" });
    const go = h("button", { type: "submit", class: "primary", id: "answer-send" }, t(verb));
    add(main, h("form", { novalidate: true, onsubmit: async (e) => {
      e.preventDefault();
      if (!text.value.trim()) { text.setAttribute("aria-invalid", "true"); text.focus(); return; }
      const gen = screen();
      const conv = await busy(go, slot, () => B.answer(item.id, text.value.trim()));
      if (conv !== FAILED && isCurrent(gen)) location.hash = `#/board/talk/${conv.id}`;
    } }, h("h2", {}, t(verb)), field(t("board.firstMessage"), text, t("board.firstMessageHint")), go, slot));
  });
}
