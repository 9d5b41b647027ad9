// First visit and return visits: create, import or unlock a key, or use an injected wallet;
// then sign in (EIP-4361) in the browser.
import { h, show, field, fieldError, busy, FAILED, screen, isCurrent } from "../ui.js";
import { t } from "../i18n.js";
import * as W from "../wallet.js";
import { qrSvg } from "../qr.js";

const MIN_PASSPHRASE = 8;

function passInput(id, autocomplete) {
  return h("input", { id, type: "password", autocomplete, required: true, minlength: MIN_PASSPHRASE });
}

async function finish(slot, button, go, step, then = signInOrWait) {
  const gen = screen();
  const ok = await busy(button, slot, async (progress) => { await step(progress); return true; }, t("keys.working"));
  if (ok !== FAILED && isCurrent(gen)) await then(slot, button, go);
}

/** Sign in; a key with no account yet gets a screen with its address for the treasurer.
 * Nothing happens if the member moved to another screen meanwhile. */
async function signInOrWait(slot, button, go) {
  const gen = screen();
  const ok = await busy(button, slot, () => W.signIn(), t("keys.signingIn"));
  if (!isCurrent(gen)) return;
  if (ok !== FAILED) return go();
  if (slot.querySelector('[data-code="forbidden"]')) awaitingAccount(go);
}

/** Right after a key is made: the only copy is in this browser, so offer the file now and
 * ask the browser not to evict the storage (navigator.storage.persist). */
async function backupStep(_slot, _button, go) {
  let persisted = false;
  try { persisted = Boolean(navigator.storage && navigator.storage.persist && await navigator.storage.persist()); } catch { /* not offered */ }
  const address = W.current().address;
  const slot = h("div", { id: "status" });
  const download = h("a", { class: "button primary", id: "backup-keystore", download: `ayni-${address}.json`,
    href: URL.createObjectURL(new Blob([W.storedKeystore()], { type: "application/json" })) }, t("settings.export"));
  const next = h("button", { type: "button", id: "backup-done", onclick: () => signInOrWait(slot, next, go) }, t("keys.backupDone"));
  show(t("keys.backupTitle"), h("p", {}, t("keys.backupIntro")),
    persisted ? null : h("p", { class: "notice", id: "not-persisted" }, t("keys.notPersisted")),
    download, " ", next, slot);
}

function awaitingAccount(go) {
  const address = W.current().address;
  const slot = h("div", { id: "status" });
  const retry = h("button", { type: "button", class: "primary", id: "retry-sign-in",
    onclick: () => signInOrWait(slot, retry, go) }, t("keys.tryAgain"));
  show(t("keys.noAccountTitle"), h("p", {}, t("keys.noAccount")),
    h("p", {}, h("code", { class: "address", id: "my-address" }, address)),
    h("div", { class: "qr", html: qrSvg(address, t("keys.addressQr")) }), retry, slot);
}

export function welcome(go) {
  const stored = W.storedAddress();
  if (stored) return unlockScreen(go, stored);
  const children = [
    h("p", {}, t("keys.intro")),
    h("ul", { class: "choices" },
      h("li", {}, h("a", { class: "button primary", href: "#/key/new" }, t("keys.create"))),
      h("li", {}, h("a", { class: "button", href: "#/key/import" }, t("keys.import"))),
      W.hasInjected() ? h("li", {}, h("button", { type: "button", id: "use-injected", onclick: (e) => injected(e, go) }, t("keys.injected"))) : null),
    h("div", { id: "status" }),
  ];
  show(t("keys.welcomeTitle"), ...children);
}

async function injected(event, go) {
  await finish(document.getElementById("status"), event.currentTarget, go, () => W.useInjected());
}

function unlockScreen(go, address) {
  const pass = passInput("unlock-pass", "current-password");
  const slot = h("div", { id: "status" });
  const button = h("button", { type: "submit", class: "primary" }, t("keys.unlock"));
  const form = h("form", { onsubmit: (e) => { e.preventDefault(); finish(slot, button, go, (p) => W.unlock(pass.value, p)); } },
    h("p", {}, t("keys.unlockFor"), " ", h("code", { class: "address" }, address)),
    field(t("keys.passphrase"), pass), button, slot);
  show(t("keys.unlockTitle"), form,
    h("details", {}, h("summary", {}, t("keys.otherOptions")),
      h("p", {}, t("keys.forgetWarning")),
      h("button", { type: "button", class: "danger", onclick: () => {
        if (confirm(t("keys.forgetConfirm"))) { W.forgetKey(); location.hash = "#/"; welcome(go); }
      } }, t("keys.forget"))));
}

export function createKey(go) {
  const pass = passInput("new-pass", "new-password");
  const again = passInput("new-pass-again", "new-password");
  const slot = h("div", { id: "status" });
  const button = h("button", { type: "submit", class: "primary" }, t("keys.createButton"));
  const form = h("form", { onsubmit: (e) => {
    e.preventDefault();
    if (pass.value.length < MIN_PASSPHRASE) return fieldError(pass, slot, "passphrase_short");
    if (pass.value !== again.value) return fieldError(again, slot, "passphrase_mismatch");
    finish(slot, button, go, (p) => W.createKey(pass.value, p), backupStep);
  } }, h("p", {}, t("keys.createIntro")),
  field(t("keys.passphrase"), pass, t("keys.passphraseHint", { n: MIN_PASSPHRASE })),
  field(t("keys.passphraseAgain"), again), button, slot);
  show(t("keys.createTitle"), form, h("p", {}, h("a", { href: "#/" }, t("common.back"))));
}

export function importKey(go) {
  const file = h("input", { id: "import-file", type: "file", accept: ".json,application/json,text/plain", required: true });
  const pass = passInput("import-pass", "current-password");
  pass.removeAttribute("minlength"); // files made elsewhere may have shorter passphrases
  const slot = h("div", { id: "status" });
  const button = h("button", { type: "submit", class: "primary" }, t("keys.importButton"));
  const form = h("form", { onsubmit: async (e) => {
    e.preventDefault();
    const text = file.files[0] ? await file.files[0].text() : "";
    finish(slot, button, go, (p) => W.importKeystore(text, pass.value, p));
  } }, h("p", {}, t("keys.importIntro")),
  field(t("keys.keystoreFile"), file), field(t("keys.passphrase"), pass), button, slot);
  show(t("keys.importTitle"), form, h("p", {}, h("a", { href: "#/" }, t("common.back"))));
}
