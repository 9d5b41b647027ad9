// Tiny DOM helpers: no framework, so the whole app stays a few kilobytes.
import { t, has } from "./i18n.js";

/** h("button", {onclick, class: "primary"}, "text", child...) */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === false || v === null || v === undefined) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (k === "html") el.innerHTML = v; // only for trusted, generated markup (QR SVG)
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/** parent.append without the nulls of conditional children (append(null) writes "null"). */
export const add = (parent, ...kids) => parent.append(...kids.flat(Infinity).filter((k) => k !== null && k !== undefined && k !== false));

const root = () => document.getElementById("app");

/** Replace the screen; focus its heading so screen readers announce the new screen. */
export function show(title, ...body) {
  const heading = h("h1", { tabindex: "-1", id: "screen-title" }, title);
  const main = h("main", { id: "main", "aria-labelledby": "screen-title" }, heading, ...body);
  root().replaceChildren(nav(), main);
  document.title = `${title} · Ayni`;
  heading.focus();
  return main;
}

let navItems = null;
export const setNav = (items) => { navItems = items; };
function nav() {
  if (!navItems) return h("header", { class: "bar" }, h("span", { class: "brand" }, "Ayni"));
  const here = location.hash.split("?")[0] || "#/";
  return h("header", { class: "bar" }, h("span", { class: "brand" }, "Ayni"),
    h("nav", { "aria-label": t("nav.label") }, h("ul", {}, navItems.map(([href, label]) =>
      h("li", {}, h("a", { href, "aria-current": here === href ? "page" : false }, label))))));
}

/** A placeholder while data loads on a slow link (never a blank screen). */
export const loading = (text) => h("p", { class: "loading", role: "status", "aria-live": "polite" }, text || t("common.loading"));

/** A clear message for an API or local error: the catalogue's sentence for the code, then
 * the server's own detail (it carries numbers, e.g. how much can still be spent). */
export function errorBox(err) {
  const code = err && err.code ? err.code : "unknown";
  const key = `error.${code}`;
  const detail = err && err.message && err.message !== code ? err.message : "";
  return h("div", { class: "error", role: "alert", "data-code": code },
    h("strong", {}, has(key) ? t(key) : t("error.unknown")),
    detail ? h("p", { class: "detail" }, detail) : null);
}

export function field(label, input, hint) {
  const id = input.id || `f-${Math.random().toString(36).slice(2, 9)}`;
  input.id = id;
  const kids = [h("label", { for: id }, label), input];
  if (hint) {
    const hintId = `${id}-hint`;
    input.setAttribute("aria-describedby", hintId);
    kids.push(h("p", { class: "hint", id: hintId }, hint));
  }
  return h("div", { class: "field" }, kids);
}

export const FAILED = Symbol("failed");

/** Run `work` with a button disabled and a live status; errors land in `slot`. */
export async function busy(button, slot, work, pendingText) {
  button.disabled = true;
  slot.replaceChildren(loading(pendingText));
  try {
    const out = await work((pct) => { slot.firstChild && (slot.firstChild.textContent = `${pendingText || t("common.loading")} ${Math.round(pct * 100)}%`); });
    slot.replaceChildren();
    return out;
  } catch (err) {
    slot.replaceChildren(errorBox(err));
    return FAILED;
  } finally {
    button.disabled = false;
  }
}

export const short = (address) => `${address.slice(0, 6)}…${address.slice(-4)}`;
