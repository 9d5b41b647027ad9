// Posting and managing your own listings: post, edit, pause, resume, close, and see a
// moderator's reason when a treasurer hid one (with the whole moderation log).
import { h, add, show, field, fieldError, busy, FAILED, screen, isCurrent, userText, errorBox } from "../ui.js";
import { t } from "../i18n.js";
import * as W from "../wallet.js";
import * as B from "../board_api.js";
import { load } from "./money.js";
import { parseAmount, formatAmount } from "../amounts.js";
import { firstRefused } from "../text.js";
import { currencyOf, categoryName, listingCard, boardMenu, day, when, reload } from "./board_common.js";

const LIMITS = { title: 120, description: 2000, availability: 200 };

/** The form of a new listing (`item` null) or of changes to one of yours. */
function listingForm(main, com, cfg, item, save) {
  const isNew = !item;
  const v = item || {};
  const radio = (k) => h("label", { class: "check" },
    h("input", { type: "radio", name: "lst-kind", value: k, id: `lst-kind-${k}`, checked: k === "offer" }), t(`board.kindExplain.${k}`));
  const kinds = isNew ? h("fieldset", { id: "lst-kind" }, h("legend", {}, t("board.kind")), cfg.kinds.map(radio)) : null;
  const input = (id, max, value) => h("input", { id, type: "text", maxlength: String(max), value: value || "", autocomplete: "off" });
  const title = input("lst-title", LIMITS.title, v.title);
  title.required = true;
  const description = h("textarea", { id: "lst-description", rows: "5", maxlength: String(LIMITS.description) });
  description.value = v.description || "";
  const select = (id, options, value) => { const s = h("select", { id }, options); if (value) s.value = value; return s; };
  const category = select("lst-category", cfg.categories.map((c) => h("option", { value: c.id }, categoryName(c.id, c.label))), v.category);
  const area = select("lst-area", cfg.areas.map((a) => h("option", { value: a.id }, a.label)), v.area);
  const currency = select("lst-currency", cfg.currencies.map((c) => h("option", { value: c }, `${currencyOf(com, c).name || c} (${c})`)), v.currency);
  const unit = select("lst-unit", cfg.priceUnits.map((u) => h("option", { value: u }, t(`board.unit.${u}`))), v.priceUnit);
  const price = input("lst-price", 40, v.price ? formatAmount(currencyOf(com, v.currency), v.price) : "");
  price.inputMode = "decimal";
  const priceField = field(t("board.priceLabel"), price, t("board.priceHint"));
  const showPrice = () => { priceField.hidden = unit.value === "agree"; };
  unit.addEventListener("change", showPrice);
  showPrice();
  const availability = input("lst-availability", LIMITS.availability, v.availability);
  const days = h("input", { id: "lst-days", type: "number", inputmode: "numeric", min: "1", max: String(cfg.expiryDays.offer.max), step: "1" });
  const daysHint = isNew ? t("board.daysHint", { offer: cfg.expiryDays.offer.default, need: cfg.expiryDays.need.default, max: cfg.expiryDays.offer.max })
    : t("board.daysKeep", { date: day(v.expiresAt), max: cfg.expiryDays.offer.max });
  const slot = h("div", { id: "status" });
  const submit = h("button", { type: "submit", class: "primary", id: "lst-save" }, t(isNew ? "board.publish" : "board.save"));
  add(main, h("form", { novalidate: true, id: "listing-form", onsubmit: async (e) => {
    e.preventDefault();
    const body = {};
    if (isNew) body.kind = main.querySelector('input[name="lst-kind"]:checked').value;
    const texts = [[title, "title", true], [description, "description", false], [availability, "availability", false]];
    for (const [el, name, required] of texts) {
      const value = el.value.trim();
      if (required && !value) return fieldError(el, slot, "board_text_missing");
      // the API's one text rule (descriptions may keep line breaks)
      if (firstRefused(name === "description" ? value.replace(/\n/g, " ") : value)) return fieldError(el, slot, "board_text_bad");
      body[name] = value;
    }
    if (!body.availability) body.availability = null;
    Object.assign(body, { category: category.value, area: area.value, currency: currency.value, priceUnit: unit.value });
    if (unit.value === "agree") body.price = null;
    else {
      try { body.price = parseAmount(currencyOf(com, currency.value), price.value); } catch (err) { return fieldError(price, slot, err.code); }
    }
    if (days.value.trim()) {
      const n = Number(days.value);
      if (!Number.isInteger(n) || n < 1 || n > cfg.expiryDays.offer.max) return fieldError(days, slot, "board_days");
      body.expiresInDays = n;
    }
    const gen = screen();
    const out = await busy(submit, slot, () => save(body));
    if (out !== FAILED && isCurrent(gen)) location.hash = `#/board/listing/${out.id}`;
  } }, kinds,
  field(t("board.titleLabel"), title, t("board.titleHint")),
  field(t("board.description"), description, t("board.descriptionHint")),
  field(t("board.category"), category), field(t("board.area"), area, t("board.areaHint")),
  field(t("board.currency"), currency), field(t("board.unitLabel"), unit), priceField,
  field(t("board.availability"), availability, t("board.availabilityHint")),
  field(t("board.days"), days, daysHint), submit, slot));
}

export function postListing() {
  const main = show(t("board.postTitle"));
  add(main, boardMenu("#/board/new"));
  load(main, async () => Promise.all([W.getCommunity(), B.boardConfig()]), ([com, cfg]) =>
    listingForm(main, com, cfg, null, (body) => B.post(body)));
}

export function editListing(id) {
  const main = show(t("board.editTitle"));
  add(main, boardMenu(""));
  load(main, async () => Promise.all([W.getCommunity(), B.boardConfig(), B.listing(id)]), ([com, cfg, item]) => {
    if (!item.mine) return add(main, errorBox({ code: "unknown_listing" }));
    if (item.status === "closed") return add(main, h("p", {}, t("board.closedFinal")));
    listingForm(main, com, cfg, item, (body) => B.edit(id, body));
  });
}

/** Pause / resume / close buttons for a listing of yours, as its status allows. */
function actions(item, slot) {
  const button = (action, cls) => {
    const b = h("button", { type: "button", class: cls, "data-action": action }, t(`board.action.${action}`));
    b.addEventListener("click", async () => { if (await busy(b, slot, () => B.act(item.id, action)) !== FAILED) reload(); });
    return b;
  };
  const out = [];
  if (item.status !== "closed") out.push(h("a", { class: "button", href: `#/board/edit/${item.id}` }, t("board.action.edit")));
  if (item.status === "active") out.push(button("pause"));
  if (item.status === "paused") out.push(button("resume"));
  if (item.status === "active" || item.status === "paused") out.push(button("close", "danger"));
  return h("p", { class: "actions" }, out.flatMap((b) => [b, " "]));
}

/** What only the author sees: the status, a moderator's hide with its reason. */
function ownState(item) {
  return [h("p", { class: "status", "data-status": item.status }, t("board.statusIs", { status: t(`board.status.${item.status}`) }),
    " ", t("board.expires", { date: day(item.expiresAt) })),
  item.status === "expired" ? h("p", { class: "hint" }, t("board.expiredHint")) : null,
  item.status === "closed" ? h("p", { class: "hint" }, t("board.closedFinal")) : null,
  item.hidden ? h("div", { class: "notice hidden-reason", role: "note" }, h("strong", {}, t("board.hiddenBy", { date: day(item.hidden.at) })), " ",
    userText("span", item.hidden.reason, { class: "reason" })) : null];
}

export function myListings() {
  const main = show(t("board.mineTitle"));
  add(main, boardMenu("#/board/mine"));
  load(main, async () => Promise.all([W.getCommunity(), B.mine()]), ([com, data]) => {
    if (!data.items.length) return add(main, h("p", {}, t("board.mineNone")), h("a", { class: "button primary", href: "#/board/new" }, t("board.post")));
    add(main, h("ul", { class: "listings", id: "my-listings" }, data.items.map((item) => {
      const slot = h("div");
      return listingCard(com, item, { extra: [...ownState(item), actions(item, slot), slot] });
    })));
  });
}

/** Your own listing: state, actions, the moderation log, and the conversations it started. */
export function ownListing(main, com, item) {
  const slot = h("div", { id: "status" });
  add(main, h("ul", { class: "listings" }, listingCard(com, item, { link: false,
    extra: [item.description ? userText("p", item.description, { class: "description" }) : null, ...ownState(item), actions(item, slot), slot] })));
  const log = h("section", { "aria-labelledby": "mod-h" }, h("h2", { id: "mod-h" }, t("board.moderation")));
  const convs = h("section", { "aria-labelledby": "conv-h" }, h("h2", { id: "conv-h" }, t("board.talksHere")));
  add(main, convs, log);
  load(log, () => B.moderation(item.id), (data) => add(log, data.items.length
    ? h("ol", { id: "moderation" }, data.items.map((m) => h("li", {}, t(`board.mod.${m.action}`, { date: when(m.at) }), " ", userText("span", m.reason))))
    : h("p", { class: "hint" }, t("board.moderationNone"))));
  load(convs, () => B.conversations(), (data) => {
    const here = data.items.filter((c) => c.listing.id === item.id);
    add(convs, here.length ? h("ul", {}, here.map((c) => h("li", {}, h("a", { href: `#/board/talk/${c.id}` },
      t("board.talkWith", { who: c.responder.slice(0, 8) + "…" + c.responder.slice(-6) }), " · ", when(c.lastMessageAt)))))
      : h("p", { class: "hint" }, t("board.talksNone")));
  });
}
