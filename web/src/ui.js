// Tiny DOM helpers: no framework, so the whole app stays a few kilobytes.
import { t, has } from "./i18n.js";
import { visible } from "./text.js";

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

// Each show() starts a new screen generation. Work started for an older screen (a slow
// answer, a late sign-in) checks it before touching the page, so a late result can never
// replace or alter the screen the member is looking at now.
let generation = 0;
export const screen = () => generation;
export const isCurrent = (gen) => gen === generation;

/** Replace the screen; focus its heading so screen readers announce the new screen. */
export function show(title, ...body) {
  generation += 1;
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
      // The confirmation screen keeps the form's hash: tapping that menu entry again must
      // still leave it (no hashchange fires for the same hash).
      h("li", {}, h("a", { href, "aria-current": here === href ? "page" : false,
        onclick: (e) => { if (location.hash === href) { e.preventDefault(); window.dispatchEvent(new HashChangeEvent("hashchange")); } } }, label))))));
}

/** A placeholder while data loads on a slow link (never a blank screen). */
export const loading = (text) => h("p", { class: "loading", role: "status", "aria-live": "polite" }, text || t("common.loading"));

/** A clear message for an API or local error: the catalogue's sentence for the code, then
 * the server's own detail (it carries numbers, e.g. how much can still be spent). */
export function errorBox(err) {
  // 4001: an injected wallet's "user rejected the request" (EIP-1193).
  const code = err && err.code === 4001 ? "wallet_rejected" : err && err.code ? String(err.code) : "unknown";
  const key = `error.${code}`;
  const detail = err && err.message && err.message !== code ? err.message : "";
  return h("div", { class: "error", role: "alert", "data-code": code },
    h("strong", {}, has(key) ? t(key) : t("error.unknown")),
    detail ? userText("p", detail, { class: "detail" }) : null); // the server's words may quote member text
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

/** Show a field's error in `slot` and tie it to the input (aria-invalid, aria-describedby),
 * so a screen reader reads the reason when the input takes focus. */
export function fieldError(input, slot, code) {
  const box = errorBox({ code });
  box.id = `${input.id}-error`;
  slot.replaceChildren(box);
  input.setAttribute("aria-invalid", "true");
  const ids = (input.getAttribute("aria-describedby") || "").split(" ").filter((x) => x && x !== box.id);
  input.setAttribute("aria-describedby", [box.id, ...ids].join(" "));
  input.addEventListener("input", () => input.removeAttribute("aria-invalid"), { once: true });
  input.focus();
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

/** An address shortened for people: 6 + 6 hex digits (4 + 4 is cheap to imitate). */
export const short = (address) => `${address.slice(0, 8)}…${address.slice(-6)}`;

/** User-written text (memos, anything another member or the server wrote): every control,
 * format or separator character is shown as a visible escape (text.js `visible`, as the
 * wallet CLI does), and the browser picks its direction and keeps it from reordering the text
 * around it (a right-to-left override cannot make "5.00" read as "00.5"). The one way the
 * app shows untrusted text. */
export const userText = (tag, text, attrs = {}) =>
  h(tag, { ...attrs, dir: "auto", class: `user-text ${attrs.class || ""}`.trim() }, visible(text));

/** A "Show more" button that pages with the server's cursor: shown only while the server names
 * a next page, never asking without one, and one page at a time: it is disabled while the page
 * loads and the cursor is used once, so a double tap or two scripted clicks ask once. `go(cursor)`
 * loads that page, whose rendering calls nextPage again with the following cursor (or none). */
export function nextPage(button, cursor, go) {
  button.hidden = !cursor;
  button.disabled = false;
  button.onclick = () => {
    if (!cursor || button.disabled) return;
    const next = cursor;
    cursor = null;
    button.disabled = true;
    go(next);
  };
}
