// The member's data-sharing preferences (grants: who may read which category of my data, for
// which purpose, until when), the portable preference document, and the access log.
import { h, add, show, field, busy, FAILED, errorBox, short, nextPage } from "../ui.js";
import { t, has } from "../i18n.js";
import { api } from "../api.js";
import * as W from "../wallet.js";
import { parseAddress } from "../crypto.js";
import { nameOf } from "../contacts.js";
import { visible } from "../text.js";
import { load } from "./money.js";

const label = (kind, id, fallback) => (has(`${kind}.${id}`) ? t(`${kind}.${id}`) : fallback || id);
const whoLabel = (g) => {
  const [[kind, value]] = Object.entries(g);
  if (kind === "account") return nameOf(value) || short(value);
  return kind === "role" ? label("role", value) : visible(value); // an organisation's name, as a member typed it
};

export function privacy() {
  const me = W.current().address;
  const base = `/v1/accounts/${me}`;
  const main = show(t("privacy.title"));
  load(main, async () => Promise.all([api("/v1/data-policy"), api(`${base}/preferences`)]), ([policy, prefs]) => {
    const purposes = policy.purposes.filter((p) => !p.essential && p.categories.length);
    // -- current grants
    const grants = h("section", { class: "card", "aria-labelledby": "grants-h" }, h("h2", { id: "grants-h" }, t("privacy.grants")));
    if (!prefs.grants.length) add(grants, h("p", {}, t("privacy.noGrants")));
    add(grants, h("ul", { class: "grants", id: "grants" }, prefs.grants.map((g) => {
      const slot = h("div");
      const revoke = h("button", { type: "button", class: "danger", "aria-label": t("privacy.revokeLabel", { who: whoLabel(g.grantee), category: label("category", g.category) }) }, t("privacy.revoke"));
      revoke.addEventListener("click", async () => {
        const out = await busy(revoke, slot, () => api(`${base}/grants/${encodeURIComponent(g.id)}`, { method: "DELETE" }));
        if (out !== FAILED) privacy();
      });
      return h("li", { "data-id": g.id }, h("p", {}, t("privacy.grantLine", { who: whoLabel(g.grantee),
        category: label("category", g.category), purpose: label("purpose", g.purpose), until: new Date(g.until).toLocaleDateString() })), revoke, slot);
    })));

    // -- a new grant
    const kind = h("select", { id: "grant-kind" }, ["account", "role", "organisation"].map((k) => h("option", { value: k }, t(`privacy.kind.${k}`))));
    const who = h("input", { id: "grant-who", type: "text", autocomplete: "off", required: true });
    const purpose = h("select", { id: "grant-purpose" }, purposes.map((p) => h("option", { value: p.id }, label("purpose", p.id))));
    const explain = h("p", { class: "hint", id: "grant-purpose-why" });
    const cats = h("fieldset", { id: "grant-categories" });
    const renderCats = () => {
      const p = purposes.find((x) => x.id === purpose.value);
      explain.textContent = p ? p.description : "";
      cats.replaceChildren(h("legend", {}, t("privacy.categories")), ...(p ? p.categories : []).map((c) =>
        h("label", { class: "check" }, h("input", { type: "checkbox", name: "category", value: c }), " ", label("category", c))));
    };
    purpose.addEventListener("change", renderCats);
    renderCats();
    const until = h("input", { id: "grant-until", type: "date", required: true,
      value: new Date(Date.now() + 90 * 86400e3).toISOString().slice(0, 10), min: new Date().toISOString().slice(0, 10) });
    const slot = h("div", { id: "grant-status" });
    const submit = h("button", { type: "submit", class: "primary" }, t("privacy.grant"));
    const form = h("form", { novalidate: true, onsubmit: async (e) => {
      e.preventDefault();
      let value = who.value.trim();
      if (kind.value === "account") value = parseAddress(value);
      if (!value) return slot.replaceChildren(errorBox({ code: kind.value === "account" ? "bad_address_input" : "invalid_input" }));
      const chosen = [...cats.querySelectorAll("input:checked")].map((i) => i.value);
      if (!chosen.length || !until.value) return slot.replaceChildren(errorBox({ code: "invalid_input" }));
      const out = await busy(submit, slot, async () => {
        for (const category of chosen) {
          await api(`${base}/grants`, { method: "POST", body: { grantee: { [kind.value]: value }, category,
            purpose: purpose.value, until: `${until.value}T00:00:00Z` } });
        }
        return true;
      });
      if (out !== FAILED) privacy();
    } }, field(t("privacy.kindLabel"), kind), field(t("privacy.who"), who, t("privacy.whoHint")),
    field(t("privacy.purpose"), purpose), explain, cats, field(t("privacy.until"), until), submit, slot);
    const share = h("section", { class: "card", "aria-labelledby": "share-h" }, h("h2", { id: "share-h" }, t("privacy.share")), form);

    // -- the portable document
    const file = h("input", { id: "prefs-file", type: "file", accept: ".json,application/json" });
    const docSlot = h("div");
    const importBtn = h("button", { type: "button" }, t("privacy.import"));
    importBtn.addEventListener("click", async () => {
      if (!file.files[0]) return docSlot.replaceChildren(errorBox({ code: "invalid_input" }));
      let doc;
      try { doc = JSON.parse(await file.files[0].text()); } catch { return docSlot.replaceChildren(errorBox({ code: "invalid_input" })); }
      const out = await busy(importBtn, docSlot, () => api(`${base}/preferences`, { method: "PUT", body: doc }));
      if (out !== FAILED) privacy();
    });
    const portable = h("section", { class: "card", "aria-labelledby": "doc-h" }, h("h2", { id: "doc-h" }, t("privacy.document")),
      h("p", {}, t("privacy.documentIntro")),
      h("a", { class: "button", id: "prefs-download", download: "ayni-preferences.json",
        href: URL.createObjectURL(new Blob([JSON.stringify(prefs, null, 2)], { type: "application/json" })) }, t("privacy.download")),
      field(t("privacy.importFile"), file), importBtn, docSlot);

    // -- the access log, oldest first, paged
    const log = h("section", { class: "card", "aria-labelledby": "log-h" }, h("h2", { id: "log-h" }, t("privacy.log")));
    const rows = h("ol", { class: "access-log", id: "access-log" });
    const more = h("button", { type: "button", id: "access-log-more", hidden: true }, t("privacy.more"));
    const seen = new Set(); // a row is never listed twice, whatever a page returns
    const page = (after) => load(log, () => api(`${base}/access-log?after=${after}&limit=20`), (data) => {
      for (const r of data.items) {
        if (seen.has(r.id)) continue;
        seen.add(r.id);
        rows.append(h("li", { "data-id": String(r.id) }, t("privacy.logLine", { when: new Date(r.at).toLocaleString(), who: nameOf(r.accessor) || short(r.accessor),
          role: label("role", r.accessorRole), what: r.categories.map((c) => label("category", c)).join(", "),
          purpose: label("purpose", r.purpose), basis: label("basis", r.basis) })));
      }
      if (!rows.children.length) rows.replaceChildren(h("li", { id: "no-access" }, t("privacy.noAccess")));
      // a next page only with the server's cursor: never `after=null` (422) nor the same page again
      nextPage(more, Number.isSafeInteger(data.nextAfter) && data.nextAfter > after ? data.nextAfter : null, page);
    });
    add(log, rows, more);
    add(main, h("p", {}, t("privacy.intro")), grants, share, portable, log);
    page(0);
  });
}
