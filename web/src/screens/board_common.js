// What the board's screens share: labels, prices, a listing's card. Nothing here shows who
// posted a listing (the API never says, except to its author) or anything counted per person.
import { h, userText } from "../ui.js";
import { t, has, human } from "../i18n.js";

export const currencyOf = (com, code) => com.currencies.find((c) => c.code === code) || { code, style: "decimal", decimals: 0 };
export const day = (ms) => new Date(ms).toLocaleDateString(document.documentElement.lang || undefined);
export const when = (ms) => new Date(ms).toLocaleString(document.documentElement.lang || undefined);

/** The catalogue's name for a shipped category, else the cooperative's own label (or its id:
 * an old listing whose category was removed keeps its id). */
export const categoryName = (id, label) => (has(`board.cat.${id}`) ? t(`board.cat.${id}`) : label || id);
export const kindName = (kind) => t(`board.kind.${kind}`);

export function priceText(com, item) {
  if (item.priceUnit === "agree" || item.price === null || item.price === undefined) return t("board.price.agree");
  return t(`board.price.${item.priceUnit}`, { amount: human(currencyOf(com, item.currency), item.price) });
}

export const slotText = (slots) => (slots || []).map((s) => `${t(`board.day.${s.day}`)} ${s.from}–${s.to}`).join(", ");

/** A listing as a card: kind, title (a link), category · area, price, availability. */
export function listingCard(com, item, { link = true, extra = [] } = {}) {
  const title = link ? h("a", { href: `#/board/listing/${item.id}` }, userText("span", item.title)) : userText("span", item.title);
  return h("li", { class: `card listing ${item.kind}`, "data-id": item.id },
    h("p", { class: "tag" }, kindName(item.kind)),
    h("h2", {}, title),
    h("p", { class: "hint" }, `${categoryName(item.category, item.categoryLabel)} · ${item.areaLabel || item.area}`),
    h("p", { class: "price" }, priceText(com, item)),
    item.availability ? userText("p", item.availability, { class: "hint" }) : null,
    ...extra);
}

/** The small menu of the board's own screens (a plain list of links, in reading order). */
export const boardMenu = (here) => h("nav", { class: "tabs board-menu", "aria-label": t("board.menu") },
  h("ul", {}, [["#/board", "board.browse"], ["#/board/new", "board.post"], ["#/board/mine", "board.mine"], ["#/board/talks", "board.talks"]]
    .map(([href, key]) => h("li", {}, h("a", { href, "aria-current": here === href ? "page" : false }, t(key))))));

/** Re-run the router: the screen reloads its data (after an action). */
export const reload = () => window.dispatchEvent(new HashChangeEvent("hashchange"));
