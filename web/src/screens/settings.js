// Settings: language, contacts, the keystore file (export to move to `ayni-wallet`), sign out.
import { h, show, field, short } from "../ui.js";
import { t, language, setLanguage, CATALOGUES } from "../i18n.js";
import * as W from "../wallet.js";
import { contacts, removeContact } from "../contacts.js";

export function settings(rerender) {
  const lang = h("select", { id: "lang", onchange: () => {
    localStorage.setItem("ayni.lang", lang.value);
    setLanguage(lang.value);
    rerender();
  } }, Object.keys(CATALOGUES).map((code) => h("option", { value: code, selected: code === language() }, CATALOGUES[code]["language.name"])));
  const me = W.current();
  const keyPart = me.kind === "local"
    ? [h("p", {}, t("settings.exportIntro")),
      h("a", { class: "button", id: "export-keystore", download: `ayni-${me.address}.json`,
        href: URL.createObjectURL(new Blob([W.storedKeystore()], { type: "application/json" })) }, t("settings.export"))]
    : [h("p", {}, t("settings.injected"))];
  const list = contacts();
  show(t("settings.title"),
    field(t("settings.language"), lang),
    h("h2", {}, t("settings.key")), h("p", {}, h("code", { class: "address" }, me.address)), ...keyPart,
    h("p", {}, h("a", { href: "#/privacy", id: "privacy-link" }, t("settings.privacyLink"))),
    h("h2", {}, t("settings.contacts")),
    list.length ? h("ul", { class: "contacts" }, list.map((c) => h("li", {}, `${c.name} — ${short(c.address)} `,
      h("button", { type: "button", "aria-label": t("settings.removeContact", { name: c.name }),
        onclick: () => { removeContact(c.address); settings(rerender); } }, t("settings.remove")))))
      : h("p", {}, t("settings.noContacts")),
    h("h2", {}, t("settings.session")),
    h("button", { type: "button", id: "sign-out", onclick: () => { W.signOut(); location.hash = "#/"; rerender(); } }, t("settings.signOut")));
}
