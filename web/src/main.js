// The member app: a hash router over the screens. Every screen except key setup needs an
// unlocked key and a session; a link opened before that (a payment request) is kept and
// reopened after sign-in.
import { pickLanguage, t } from "./i18n.js";
import { h, setNav } from "./ui.js";
import { whenUnauthenticated } from "./api.js";
import * as W from "./wallet.js";
import { welcome, createKey, importKey } from "./screens/keys.js";
import { home, pay, transfer, history } from "./screens/money.js";
import { remotePayment } from "./screens/remote.js";
import { requests, newRequest, showRequest } from "./screens/requests.js";
import { settings } from "./screens/settings.js";
import { privacy } from "./screens/privacy.js";
import { board } from "./screens/board.js";
import { till } from "./screens/shop.js";
import { payRequestAny, shopPay } from "./screens/shop_pay.js";
import { report, profile, code } from "./screens/shop_admin.js";

const AFTER_SIGN_IN = "ayni.afterSignIn";
const TILL = { report, profile, code }; // the shop's screens under #/till/

function route() {
  const [path, query = ""] = location.hash.replace(/^#/, "").split("?");
  const params = new URLSearchParams(query);
  const parts = (path || "/").split("/").filter(Boolean);
  if (!W.current()) {
    setNav(null);
    if (parts[0] === "key" && parts[1] === "new") return createKey(signedIn);
    if (parts[0] === "key" && parts[1] === "import") return importKey(signedIn);
    if (parts.length) sessionStorage.setItem(AFTER_SIGN_IN, location.hash);
    return welcome(signedIn);
  }
  setNav([["#/", t("nav.home")], ["#/pay", t("nav.pay")], ["#/requests", t("nav.requests")],
    ["#/history", t("nav.history")], ["#/settings", t("nav.settings")], ["#/board", t("nav.board")],
    ...(W.current().role === "shop" ? [["#/till", t("nav.till")]] : [])]);
  switch (parts[0]) {
    case undefined: return home();
    case "pay": return params.has("request") ? payRequestAny(params, pay) : pay(params); // a till's open request
    case "shop": return shopPay(parts[1], params);
    case "till": return (Object.hasOwn(TILL, parts[1] || "") ? TILL[parts[1]] : till)(params);
    case "requests": return requests(params);
    case "request": return parts[1] === "new" ? newRequest() : showRequest(parts[1]);
    case "history": return history(params);
    case "tx": return transfer(parts[1], params);
    case "remote": return remotePayment(parts[1], params);
    case "settings": return settings(route);
    case "privacy": return privacy();
    case "board": return board(parts.slice(1), params);
    default: return home();
  }
}

function signedIn() {
  const next = sessionStorage.getItem(AFTER_SIGN_IN);
  sessionStorage.removeItem(AFTER_SIGN_IN);
  const target = next && !next.startsWith("#/key") ? next : "#/";
  if (location.hash === target) route(); else location.hash = target;
}

whenUnauthenticated(async () => {
  if (!W.current()) return false;
  try { await W.signIn(); return true; } catch { return false; }
});

// Idle lock: an unlocked key on a shared or lost phone is the member's money. After
// IDLE_MS without a touch or key, or when the app comes back after HIDDEN_MS in the
// background, the key is forgotten from memory and the passphrase asked again; the screen
// the member was on reopens after unlocking.
const IDLE_MS = 5 * 60 * 1000;
const HIDDEN_MS = 2 * 60 * 1000;
let lastActive = Date.now();
let hiddenAt = null;
function lockNow() {
  if (!W.isLocal()) return;
  W.lock();
  route();
}
for (const ev of ["pointerdown", "keydown", "touchstart"]) window.addEventListener(ev, () => { lastActive = Date.now(); }, { passive: true, capture: true });
document.addEventListener("visibilitychange", () => {
  if (document.hidden) { hiddenAt = Date.now(); return; }
  if (hiddenAt !== null && Date.now() - hiddenAt >= HIDDEN_MS) lockNow();
  hiddenAt = null;
  lastActive = Date.now();
});
setInterval(() => { if (Date.now() - lastActive >= IDLE_MS) lockNow(); }, 15000);

function start() {
  pickLanguage();
  try {
    localStorage.getItem("ayni.keystore"); // throws where storage is blocked (some private modes, policies)
  } catch {
    const main = document.querySelector("main");
    main.replaceChildren(h("div", { class: "error", role: "alert", "data-code": "storage_unavailable" }, t("error.storage_unavailable")));
    return;
  }
  window.addEventListener("hashchange", route);
  route();
}
start();
