// The member app: a hash router over the screens. Every screen except key setup needs an
// unlocked key and a session; a link opened before that (a payment request) is kept and
// reopened after sign-in.
import { pickLanguage, t } from "./i18n.js";
import { setNav } from "./ui.js";
import { whenUnauthenticated } from "./api.js";
import * as W from "./wallet.js";
import { welcome, createKey, importKey } from "./screens/keys.js";
import { home, pay, transfer, history } from "./screens/money.js";
import { requests, newRequest, showRequest } from "./screens/requests.js";
import { settings } from "./screens/settings.js";
import { privacy } from "./screens/privacy.js";

const AFTER_SIGN_IN = "ayni.afterSignIn";

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
    ["#/history", t("nav.history")], ["#/settings", t("nav.settings")]]);
  switch (parts[0]) {
    case undefined: return home();
    case "pay": return pay(params);
    case "requests": return requests(params);
    case "request": return parts[1] === "new" ? newRequest() : showRequest(parts[1]);
    case "history": return history(params);
    case "tx": return transfer(parts[1], params);
    case "settings": return settings(route);
    case "privacy": return privacy();
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

pickLanguage();
window.addEventListener("hashchange", route);
route();
