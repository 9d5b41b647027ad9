// The shop till in a real browser (Debian's Chromium via playwright-core) against a real
// `ayni serve`. Driven by tests/test_web_shop.py, which passes AYNI_URL, TREASURER_KEY, OUT
// (screenshot dir), CHROMIUM, PYTHON and AYNI_DB (to give Ana a display name: the API has no
// call for it). A shop on a tablet (800 px) and two customers on phones (360 px, one in
// Spanish) use only the browser; the treasurer opens accounts over HTTP with the app's signing
// module. Prints one JSON line for the Python side to check against the ledger.
import { chromium } from "playwright-core";
import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import assert from "node:assert/strict";
import * as C from "../../web/src/crypto.js";
import { decryptKeystore } from "../../web/src/keystore.js";

const { AYNI_URL: BASE, TREASURER_KEY, OUT, CHROMIUM, PYTHON, AYNI_DB } = process.env;
mkdirSync(OUT, { recursive: true });
const PASS = "a long passphrase 1";
const step = (m) => process.stderr.write(`[shop] ${m}\n`);
const TIMEOUT = 15000; // a step that fails says so quickly

async function http(path, body) {
  const res = await fetch(BASE + path, body ? { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) } : {});
  const data = await res.json();
  if (!res.ok) throw new Error(`${path}: ${res.status} ${JSON.stringify(data)}`);
  return data;
}
const community = await http("/v1/community");
async function openAccount(account, role) {
  const message = { account, role, nonce: C.newNonce(), validUntil: String(Math.floor(Date.now() / 1000) + 600) };
  const types = { EIP712Domain: community.types.EIP712Domain, OpenAccount: community.types.OpenAccount };
  const signature = C.signDigest(C.typedDataDigest({ types, domain: community.domain, primaryType: "OpenAccount", message }), C.unhex(TREASURER_KEY));
  return http("/v1/admin/actions", { type: "OpenAccount", message, signature });
}

const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ["--no-sandbox", "--disable-dev-shm-usage"] });
const cspViolations = [];
async function device(locale, width = 360) {
  const ctx = await browser.newContext({ viewport: { width, height: width > 400 ? 1000 : 740 }, locale, deviceScaleFactor: 1, acceptDownloads: true });
  ctx.on("console", (m) => { if (/Content.Security.Policy|Refused to/i.test(m.text())) cspViolations.push(m.text()); });
  return ctx;
}
const shots = [];
async function shot(page, name) {
  // No screen scrolls sideways at its width (360 px phones, the 800 px till).
  const [width, view] = await page.evaluate(() => [document.documentElement.scrollWidth, window.innerWidth]);
  assert.ok(width <= view, `${name}: page is ${width}px wide at ${view}px`);
  const text = await page.evaluate(() => document.body.innerText);
  assert.doesNotMatch(text, /\bnull\b|\bundefined\b|\{\w+\}|NaN|shop\.\w/, `${name}: ${text}`);
  await page.screenshot({ path: join(OUT, `${name}.png`), fullPage: true });
  shots.push(`${name}.png`);
}
async function checkLabels(page, where) {
  const unlabelled = await page.evaluate(() => [...document.querySelectorAll("main input, main select, main textarea")]
    .filter((el) => el.type !== "hidden" && !(el.labels && el.labels.length) && !el.getAttribute("aria-label")).map((el) => el.id || el.outerHTML));
  assert.deepEqual(unlabelled, [], `${where}: inputs without a label`);
}
async function newMember(ctx, name, role = "member") {
  const page = await ctx.newPage();
  page.setDefaultTimeout(TIMEOUT);
  page.on("pageerror", (e) => { throw new Error(`${name}: page error ${e}`); });
  await page.goto(BASE + "/");
  await page.locator('a[href="#/key/new"]').click();
  await page.locator("#new-pass").fill(PASS);
  await page.locator("#new-pass-again").fill(PASS);
  await page.locator("#new-pass").press("Enter");
  await page.locator("#backup-done").click({ timeout: 20000 });
  const address = (await page.locator("#my-address").textContent({ timeout: 20000 })).trim();
  await openAccount(address, role);
  await page.locator("#retry-sign-in").click();
  await page.locator("section.balance, main p").first().waitFor();
  step(`${name} signed in as ${address} (${role})`);
  return { page, address };
}
const go = async (page, hash, ready) => {
  await page.evaluate((h) => { if (location.hash === h) window.dispatchEvent(new HashChangeEvent("hashchange")); else location.hash = h; }, hash);
  await page.locator(ready).first().waitFor();
};
const text = (page, sel) => page.locator(sel).first().innerText();
const takings = (page) => page.locator("#takings li").evaluateAll((lis) => lis.map((li) => ({ seq: Number(li.dataset.seq), text: li.innerText })));
const hashOf = (link) => new URL(link).hash;

const [shop, ana, sofia] = await Promise.all([
  device("en-GB", 800).then((c) => newMember(c, "Shop", "shop")),
  device("en-GB").then((c) => newMember(c, "Ana")),
  device("es-ES").then((c) => newMember(c, "Sofía")),
]);
execFileSync(PYTHON, ["-c", "import sys; from ledger.service import Ledger; Ledger.open(sys.argv[1]).set_profile(sys.argv[2], display_name='Ana García')",
  AYNI_DB, ana.address]);

// The shop's menu has the till; a member's does not.
await shop.page.locator('nav a[href="#/till"]').waitFor();
assert.equal(await ana.page.locator('nav a[href="#/till"]').count(), 0, "a member's menu shows the till");

// Profile: name, address, opening hours, published; no credit share yet.
await go(shop.page, "#/till/profile", "#prof-name");
await checkLabels(shop.page, "profile");
await shop.page.locator("#prof-name").fill("Bakery Sol");
await shop.page.locator("#prof-address").fill("Calle Mayor 3");
await shop.page.locator("#prof-hours").fill("Mon–Sat 8:00–14:00");
await shop.page.locator("#prof-published").check();
await shop.page.locator("#prof-save").click();
await shop.page.locator("#status .success").waitFor();
await shot(shop.page, "s01-profile");

// The till: 12.50 on the keypad, one tap on Charge: an open request as a QR code and link.
await go(shop.page, "#/till", "#till-amount");
await checkLabels(shop.page, "till");
await shop.page.locator("#till-label").fill("counter");
for (const k of ["1", "2", ".", "5", "0"]) await shop.page.locator(".keypad").getByRole("button", { name: k, exact: true }).click();
assert.equal(await shop.page.locator("#till-amount").inputValue(), "12.50");
await shop.page.locator("#till-charge").click();
const link1 = await shop.page.locator("#till-link").inputValue();
const request1 = link1.match(/request=(0x[0-9a-f]{64})/)[1];
assert.match(await text(shop.page, "#till-paid"), /Waiting/);
await shot(shop.page, "s02-till-qr");

// Ana's phone opens the link: the shop's published name, the amount; she lets the shop see her name.
await go(ana.page, hashOf(link1), "#sign-and-pay");
assert.equal(await text(ana.page, "#shop-name"), "Bakery Sol");
assert.match(await text(ana.page, "main"), /Pay 12\.50 CRED to\s+Bakery Sol/);
assert.match(await text(ana.page, "#typed-data"), new RegExp(`requestId\\s*${request1}`));
assert.equal(await ana.page.locator("#share-name").isChecked(), false, "consent is off by default");
await ana.page.locator("#share-name").check();
await checkLabels(ana.page, "customer pays");
await shot(ana.page, "s03-customer-pays");
await ana.page.locator("#sign-and-pay").click();
await ana.page.locator("#receipt").waitFor();
const pay1 = Number(new URL(ana.page.url()).hash.match(/#\/tx\/(\d+)/)[1]);
await shot(ana.page, "s04-customer-receipt");
// ... and the till shows it live, with her name (she consented).
await shop.page.locator("#till-paid.success").waitFor({ timeout: 10000 });
assert.match(await text(shop.page, "#till-paid"), /Paid: 12\.50 CRED \(Ana García\)/);
await shop.page.locator(`#takings li[data-seq="${pay1}"]`).waitFor();
assert.match(await text(shop.page, `#takings li[data-seq="${pay1}"]`), /\+12\.50 CRED\s*Ana García · counter/);
await shot(shop.page, "s05-till-paid");
// A second payment of the same request is refused.
await go(sofia.page, hashOf(link1), "main .error");
step("first payment done");

// The standing code: printable, the shop's name and the till's link.
await go(shop.page, "#/till/code", "#code-link");
const standing = await text(shop.page, "#code-link");
assert.equal(standing, `${BASE}/#/shop/${shop.address}?till=counter`);
assert.equal(await text(shop.page, "#code-name"), "Bakery Sol");
await shop.page.emulateMedia({ media: "print" });
assert.equal(await shop.page.locator("header.bar").isVisible(), false, "the printed code carries the menu");
await shot(shop.page, "s06-standing-code-print");
await shop.page.emulateMedia({ media: "screen" });

// Meanwhile the till's connection drops: Sofía pays by the standing code, in Spanish, without
// sharing her name. After the reconnect (and a reload) the till shows it once, nothing twice.
await go(shop.page, "#/till", "#takings li");
await shop.page.route("**/takings/feed**", (r) => r.abort());
await go(sofia.page, hashOf(standing), "#sp-amount");
assert.equal(await text(sofia.page, "#shop-name"), "Bakery Sol");
assert.match(await text(sofia.page, "main"), /Caja:\s*counter/);
assert.match(await text(sofia.page, "main"), /Mostrar mi nombre a la tienda en este pago/);
await checkLabels(sofia.page, "standing code");
await sofia.page.locator("#sp-amount").fill("3,20");
await shot(sofia.page, "s07-standing-code-es");
await sofia.page.locator("#sp-review").click();
await sofia.page.locator("#sign-and-pay").click();
await sofia.page.locator("#receipt").waitFor();
assert.match(await text(sofia.page, "main"), /Pago hecho/);
const pay2 = Number(new URL(sofia.page.url()).hash.match(/#\/tx\/(\d+)/)[1]);
await shop.page.waitForTimeout(2500); // ticks that fail
assert.equal(await shop.page.locator(`#takings li[data-seq="${pay2}"]`).count(), 0);
await shop.page.unroute("**/takings/feed**");
await shop.page.locator(`#takings li[data-seq="${pay2}"]`).waitFor({ timeout: 10000 });
// a reload (the key must be unlocked again): the same lines, once each
await shop.page.reload();
await shop.page.locator("#unlock-pass").fill(PASS);
await shop.page.locator("#unlock-pass").press("Enter");
await shop.page.locator("#takings li").nth(1).waitFor({ timeout: 20000 });
await shop.page.waitForTimeout(2500);
let lines = await takings(shop.page);
assert.deepEqual(lines.map((l) => l.seq), [pay2, pay1], JSON.stringify(lines));
assert.doesNotMatch(lines[0].text, /Sof/, "a name shown without consent");
assert.match(lines[0].text, /\+3\.20 CRED\s*[0-9a-f]{6,}/);
step("standing code and reconnect done");

// A refund of part of Ana's payment, signed on the till; more than what is left is refused.
await shop.page.locator(`#takings li[data-seq="${pay1}"] button.refund`).click();
await shop.page.locator(`#refund-${pay1}`).waitFor();
assert.equal(await shop.page.locator(`#refund-${pay1}`).inputValue(), "12.50");
await shop.page.locator(`#refund-${pay1}`).fill("13");
await shop.page.locator(`#refund-${pay1}`).press("Enter");
await shop.page.locator('[data-code="refund_exceeds_remaining"]').waitFor();
await shop.page.locator(`#refund-${pay1}`).fill("5");
await shop.page.locator(`#refund-${pay1}`).press("Enter");
await shop.page.locator("#sign-and-pay").waitFor();
assert.match(await text(shop.page, "#typed-data"), new RegExp(`payee\\s*${ana.address}\\s*currency\\s*CRED\\s*amount\\s*500`));
await shot(shop.page, "s08-refund-confirm");
await shop.page.locator("#sign-and-pay").click();
await shop.page.locator("#takings .success").waitFor();
const refundSeq = Number((await text(shop.page, "#takings .success a")).replace("#", ""));
await shop.page.locator(`#takings li[data-seq="${refundSeq}"]`).waitFor({ timeout: 10000 });
assert.match(await text(shop.page, `#takings li[data-seq="${refundSeq}"]`), new RegExp(`−5\\.00 CRED.*refund of #${pay1}`, "s"));
await shot(shop.page, "s09-refunded");
// Ana sees the link on the refund's receipt and the refunded payment's
await go(ana.page, `#/tx/${refundSeq}`, "#receipt");
assert.match(await text(ana.page, "#refund-link"), new RegExp(`refund of #${pay1}`));
await go(ana.page, `#/tx/${pay1}`, "#receipt");
assert.match(await text(ana.page, "#refund-link"), /refunded 5\.00 CRED/);
await shot(ana.page, "s10-customer-refund-link");
// ... and on both history lines
await go(ana.page, "#/history", "#history li");
const history = await text(ana.page, "#history");
assert.match(history, new RegExp(`\\+5\\.00 CRED.*refund of #${pay1}`, "s"));
assert.match(history, /−12\.50 CRED.*refunded 5\.00 CRED/s);
// what is left is offered, and no more
await go(shop.page, "#/till", `#takings li[data-seq="${pay1}"]`);
await shop.page.locator(`#takings li[data-seq="${pay1}"] button.refund`).click();
assert.equal(await shop.page.locator(`#refund-${pay1}`).inputValue(), "7.50");
step("refund done");

// Mixed payments: the shop takes 30 % in credit; a 9.99 price is 2.99 in credit (floor) and 7.00 in cash.
await go(shop.page, "#/till/profile", "#prof-share");
await shop.page.locator("#prof-share").fill("30");
await shop.page.locator("#prof-save").click();
await shop.page.locator("#status .success").waitFor();
await go(shop.page, "#/till", "#till-amount");
// a price whose credit part rounds down to nothing: take it all in cash
await shop.page.locator("#till-amount").fill("0.03");
await shop.page.locator("#till-charge").click();
await shop.page.locator('[data-code="shop_credit_zero"]').waitFor();
await shop.page.locator("#till-amount").fill("9.99");
assert.match(await text(shop.page, "#till-split"), /2\.99 CRED in credit \(30 %\), €7\.00 in cash to collect/);
await shot(shop.page, "s11-till-mixed");
await shop.page.locator("#till-charge").click();
const link3 = await shop.page.locator("#till-link").inputValue();
const request3 = link3.match(/request=(0x[0-9a-f]{64})/)[1];
await go(ana.page, hashOf(link3), "#sign-and-pay");
assert.match(await text(ana.page, "#mixed"), /Total €9\.99, 30 % in credit\. Pay €7\.00 in cash to the shop\./);
assert.match(await text(ana.page, "#typed-data"), /amount\s*299\b/);
await shot(ana.page, "s12-customer-mixed");
await ana.page.locator("#sign-and-pay").click();
await ana.page.locator("#receipt").waitFor();
const pay3 = Number(new URL(ana.page.url()).hash.match(/#\/tx\/(\d+)/)[1]);
await shop.page.locator("#till-paid.success").waitFor({ timeout: 10000 });
assert.match(await text(shop.page, `#takings li[data-seq="${pay3}"]`), /\+2\.99 CRED.*Total €9\.99, 30 % in credit/s);
// the till at phone width too
await shop.page.setViewportSize({ width: 360, height: 740 });
await shot(shop.page, "s13-till-phone");
await shop.page.setViewportSize({ width: 800, height: 1000 });
step("mixed payment done");

// The takings report for today: figures read from the screen, the CSV and the print view.
await go(shop.page, "#/till/report", "#takings-totals");
await checkLabels(shop.page, "report");
const totals = await shop.page.locator("#takings-totals tbody tr").evaluateAll((trs) => trs.map((tr) => [...tr.children].map((td) => td.innerText)));
const rows = await shop.page.locator("#takings-rows tbody tr").evaluateAll((trs) => trs.map((tr) => [...tr.children].map((td) => td.innerText)));
const [download] = await Promise.all([shop.page.waitForEvent("download"), shop.page.locator("#rep-csv").click()]);
const csv = readFileSync(await download.path(), "utf8");
await shot(shop.page, "s14-report");
await shop.page.emulateMedia({ media: "print" });
assert.equal(await shop.page.locator("#rep-show").isVisible(), false);
await shot(shop.page, "s15-report-print");
await shop.page.emulateMedia({ media: "screen" });
// Unpublish: the profile stays the shop's own, and customers no longer see it (the standing code says so).
await go(shop.page, "#/till/profile", "#prof-published");
await shop.page.locator("#prof-published").uncheck();
await shop.page.locator("#prof-save").click();
assert.match(await text(shop.page, "#status .success"), /Saved, not published/);
await go(shop.page, "#/till/profile", "#prof-name");
assert.equal(await shop.page.locator("#prof-name").inputValue(), "Bakery Sol");
assert.equal(await shop.page.locator("#prof-published").isChecked(), false);
await go(sofia.page, hashOf(standing), '[data-code="not_found"]');

// The same report from the API, signed in with the shop's own key (its keystore from the browser).
const shopKey = await decryptKeystore(await shop.page.evaluate(() => localStorage.getItem("ayni.keystore")), PASS);
const ch = await http("/v1/auth/challenge", { address: shop.address });
const { token } = await http("/v1/auth/token", { message: ch.message, signature: C.signDigest(C.personalSignDigest(ch.message), shopKey) });
const day = new Date().toISOString().slice(0, 10);
const reportUrl = `${BASE}/v1/shops/${shop.address}/takings?from=${day}&to=${day}&period=day&format=`;
const auth = { headers: { authorization: `Bearer ${token}` } };
const apiReport = await (await fetch(reportUrl + "json", auth)).json();
const apiCsv = await (await fetch(reportUrl + "csv", auth)).text();

assert.deepEqual(cspViolations, []);
await browser.close();
console.log(JSON.stringify({ shop: shop.address, ana: ana.address, sofia: sofia.address, request1, request3, pay1, pay2, pay3,
  refundSeq, totals, rows, csv, apiCsv, apiReport, shots }));
