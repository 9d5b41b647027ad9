// The member web app in a real browser (Debian's Chromium via playwright-core) against a
// real `ayni serve`. Driven by tests/test_web.py, which starts the server and passes:
//   AYNI_URL, TREASURER_KEY (0x hex), CARL_KEY (0x hex), CARL_KEYSTORE (file), CARL_PASS,
//   OUT (screenshot dir), CHROMIUM (executable).
// The treasurer and Carl sign with the app's own signing module over HTTP (like a till or
// a script would); Ana, Bea and the shop use nothing but the browser.
// Prints one JSON line with what the Python side checks afterwards.
import { chromium } from "playwright-core";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import assert from "node:assert/strict";
import * as C from "../../web/src/crypto.js";

const { AYNI_URL: BASE, TREASURER_KEY, CARL_KEY, CARL_KEYSTORE, CARL_PASS, OUT, CHROMIUM } = process.env;
mkdirSync(OUT, { recursive: true });
const PASS = "a long passphrase 1";
const step = (m) => process.stderr.write(`[web] ${m}\n`);

async function http(path, body) {
  const res = await fetch(BASE + path, body ? { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) } : {});
  const data = await res.json();
  if (!res.ok) throw new Error(`${path}: ${res.status} ${JSON.stringify(data)}`);
  return data;
}
const community = await http("/v1/community");
const typesFor = (primary) => ({ EIP712Domain: community.types.EIP712Domain, [primary]: community.types[primary] });
const validUntil = () => String(Math.floor(Date.now() / 1000) + 600);

async function openAccount(account, role) {
  const message = { account, role, nonce: C.newNonce(), validUntil: validUntil() };
  const signature = C.signDigest(C.typedDataDigest({ types: typesFor("OpenAccount"), domain: community.domain, primaryType: "OpenAccount", message }), C.unhex(TREASURER_KEY));
  return http("/v1/admin/actions", { type: "OpenAccount", message, signature });
}

async function payFromKey(key, payee, currency, amount) {
  const message = { payer: C.addressOfKey(C.unhex(key)), payee, currency, amount, nonce: C.newNonce(), validUntil: validUntil(), memoHash: C.ZERO32, requestId: C.ZERO32 };
  const signature = C.signDigest(C.typedDataDigest({ types: typesFor("Transfer"), domain: community.domain, primaryType: "Transfer", message }), C.unhex(key));
  return http("/v1/transfers", { transfer: message, signature });
}

const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ["--no-sandbox", "--disable-dev-shm-usage"] });
const phone = (locale) => browser.newContext({ viewport: { width: 360, height: 740 }, locale, deviceScaleFactor: 1, acceptDownloads: true });
const shots = [];
async function shot(page, name) {
  // A 360 px screen must never scroll sideways.
  const width = await page.evaluate(() => document.documentElement.scrollWidth);
  assert.ok(width <= 360, `${name}: page is ${width}px wide at 360px`);
  // No leaked "null"/"undefined" and no unfilled {placeholder} from the catalogue.
  const text = await page.evaluate(() => document.body.innerText);
  assert.doesNotMatch(text, /\bnull\b|\bundefined\b|\{\w+\}|NaN/, `${name}: ${text}`);
  await page.screenshot({ path: join(OUT, `${name}.png`), fullPage: true });
  shots.push(`${name}.png`);
}
async function checkLabels(page, where) {
  const unlabelled = await page.evaluate(() => [...document.querySelectorAll("main input, main select")]
    .filter((el) => el.type !== "hidden" && !(el.labels && el.labels.length) && !el.getAttribute("aria-label")).map((el) => el.id || el.outerHTML));
  assert.deepEqual(unlabelled, [], `${where}: inputs without a label`);
}

/** First visit: create a key in the browser; the treasurer opens the account; sign in. */
async function newMember(ctx, name, role, screenshots = false) {
  const page = await ctx.newPage();
  page.on("pageerror", (e) => { throw new Error(`${name}: page error ${e}`); });
  await page.goto(BASE + "/");
  await page.getByRole("heading", { level: 1 }).waitFor();
  if (screenshots) await shot(page, "01-welcome");
  await page.locator('a[href="#/key/new"]').click();
  await page.locator("#new-pass").fill(PASS);
  await page.locator("#new-pass-again").fill(PASS);
  await checkLabels(page, "create key");
  if (screenshots) await shot(page, "02-create-key");
  await page.locator("#new-pass").press("Enter");
  const address = (await page.locator("#my-address").textContent({ timeout: 20000 })).trim();
  if (screenshots) await shot(page, "03-no-account-yet");
  await openAccount(address, role);
  await page.locator("#retry-sign-in").click();
  await page.locator("section.balance").first().waitFor();
  step(`${name} signed in as ${address}`);
  return { page, address };
}

const ana = await newMember(await phone("en-GB"), "Ana", "member", true);
const bea = await newMember(await phone("en-GB"), "Bea", "member");
const shop = await newMember(await phone("es-ES"), "Shop", "shop");

// Ana's balances state the limit plainly.
const hourCard = ana.page.locator('section.balance[data-currency="HOUR"]');
assert.match(await hourCard.textContent(), /You can still spend 10 hours/);
await shot(ana.page, "04-home");

// Ana pays Bea 1h30m with a note; she saves Bea as a contact on the way.
await ana.page.locator('nav a[href="#/pay"]').click();
await ana.page.locator("#pay-to").waitFor();
await checkLabels(ana.page, "pay");
// Keyboard order: from the screen title, Tab walks the form top to bottom.
await ana.page.locator("#screen-title").focus();
const order = [];
for (let i = 0; i < 5; i++) { await ana.page.keyboard.press("Tab"); order.push(await ana.page.evaluate(() => document.activeElement.id)); }
assert.deepEqual(order, ["pay-to", "pay-currency", "pay-amount", "pay-memo", "pay-save-name"]);
await ana.page.locator("#pay-to").fill(bea.address.toLowerCase());
await ana.page.locator("#pay-currency").selectOption("HOUR");
await ana.page.locator("#pay-amount").fill("1h30m");
await ana.page.locator("#pay-memo").fill("garden help");
await ana.page.locator("#pay-save-name").fill("Bea");
await shot(ana.page, "05-pay");
await ana.page.getByRole("button", { name: "Review the payment" }).click();
const exact = ana.page.locator("#typed-data");
await exact.waitFor();
const typed = await exact.textContent();
assert.match(typed, new RegExp(`payee${bea.address}`));
assert.match(typed, /amount90 \(1h30m\)/);
assert.match(await ana.page.locator("#confirm-summary").textContent(), /You are paying 1.5 hours to Bea/);
await shot(ana.page, "06-confirm");
await ana.page.locator("#sign-and-pay").click();
await ana.page.getByText("Payment done.").waitFor();
await ana.page.locator("#anchor-status").waitFor();
const anchorText = await ana.page.locator("#anchor-status").textContent();
const firstSeq = Number(new URL(ana.page.url()).hash.match(/#\/tx\/(\d+)/)[1]);
await shot(ana.page, "07-receipt");
step(`Ana paid Bea: seq ${firstSeq} (${anchorText})`);

// The shop asks Ana for 12.50 CRED and shows it as a QR code and a link.
await shop.page.locator('a[href="#/request/new"]').first().click();
await shop.page.locator("#req-payer").fill(ana.address);
await shop.page.locator("#req-currency").selectOption("CRED");
await shop.page.locator("#req-amount").fill("12,50");
await shop.page.locator("#req-memo").fill("bread");
await shop.page.locator("#req-memo").press("Enter");
const link = await shop.page.locator("#request-link").inputValue({ timeout: 20000 });
assert.ok(link.startsWith(BASE + "/#/pay?request=0x"), link);
assert.equal(await shop.page.locator(".qr svg").count(), 1);
await shot(shop.page, "08-shop-request-qr");

// Ana opens the link on "another phone" (a fresh tab: the key must be unlocked first), and
// lands on the pre-filled confirmation after signing in.
const anaPhone2 = await ana.page.context().newPage();
await anaPhone2.goto(link);
await anaPhone2.locator("#unlock-pass").fill(PASS);
await shot(anaPhone2, "09-unlock");
await anaPhone2.locator("#unlock-pass").press("Enter");
await anaPhone2.locator("#typed-data").waitFor({ timeout: 30000 });
const reqTyped = await anaPhone2.locator("#typed-data").textContent();
assert.match(reqTyped, /amount1250 \(12.50\)/);
assert.match(reqTyped, new RegExp(`requestId${link.match(/request=(0x[0-9a-f]{64})/)[1]}`));
assert.match(await anaPhone2.locator(".notice").textContent(), /pays a payment request/);
await shot(anaPhone2, "10-approve-request");
await anaPhone2.locator("#sign-and-pay").click();
await anaPhone2.getByText("Payment done.").waitFor();
// The till sees it paid by itself (it polls), in Spanish.
await shop.page.locator("#request-status", { hasText: "Pagada" }).waitFor({ timeout: 15000 });
await shot(shop.page, "11-shop-request-paid");

// Over the limit: refused, with the reason.
await ana.page.locator('nav a[href="#/pay"]').click();
await ana.page.locator("#pay-to").fill(bea.address);
await ana.page.locator("#pay-currency").selectOption("HOUR");
await ana.page.locator("#pay-amount").fill("20");
await ana.page.locator("#pay-amount").press("Enter");
await ana.page.locator("#sign-and-pay").click();
const refusal = ana.page.locator('[role="alert"][data-code="credit_limit_exceeded"]');
await refusal.waitFor();
assert.match(await refusal.textContent(), /past your credit limit/);
await shot(ana.page, "12-refused-over-limit");

// Carl's keystore, made by Python (eth-account, as ayni-wallet writes it), opens in the app.
const carl = await (await phone("en-GB")).newPage();
await carl.goto(BASE + "/#/key/import");
await carl.locator("#import-file").setInputFiles(CARL_KEYSTORE);
await carl.locator("#import-pass").fill(CARL_PASS);
await carl.locator("#import-pass").press("Enter");
await carl.locator("section.balance").first().waitFor({ timeout: 30000 });
const carlAddress = C.addressOfKey(C.unhex(CARL_KEY));
// Carl pays Ana eleven times, so her history needs a second page.
for (let i = 1; i <= 11; i++) await payFromKey(CARL_KEY, ana.address, "HOUR", i);

// History with paging: 10 newest, then older ones; both of Ana's own payments are there.
await ana.page.locator('nav a[href="#/history"]').click();
await ana.page.locator("#history li").first().waitFor();
assert.equal(await ana.page.locator("#history li").count(), 10);
await shot(ana.page, "13-history");
await ana.page.locator("#older").click();
await ana.page.locator("#history li").nth(12).waitFor();
const historyText = await ana.page.locator("#history").textContent();
assert.equal(await ana.page.locator("#history li").count(), 13);
assert.match(historyText, /−1.5 hours to Bea · garden help/);
assert.match(historyText, /−12.50 CRED to 0x.{4}….{4} · bread/);

// Slow network: a delayed answer shows a loading state, never a blank screen.
await ana.page.route("**/v1/accounts/*", async (route) => { await new Promise((r) => setTimeout(r, 1500)); await route.continue(); });
await ana.page.locator('nav a[href="#/"]').click();
await ana.page.getByRole("status").filter({ hasText: "Loading" }).waitFor({ timeout: 1000 });
await shot(ana.page, "14-loading");
await ana.page.locator("section.balance").first().waitFor();
await ana.page.unroute("**/v1/accounts/*");
assert.match(await hourCard.textContent(), /You can still spend/);

// Export Ana's keystore (Python then opens it with eth-account).
await ana.page.locator('nav a[href="#/settings"]').click();
const [download] = await Promise.all([ana.page.waitForEvent("download"), ana.page.locator("#export-keystore").click()]);
const exported = join(OUT, "ana-keystore.json");
await download.saveAs(exported);
await shot(ana.page, "15-settings");

// Data sharing: Ana lets Carl see her account and balances for care coordination; Carl's
// read shows in her access log; once she revokes, Carl is refused.
async function signInAs(key) {
  const address = C.addressOfKey(C.unhex(key));
  const ch = await http("/v1/auth/challenge", { address });
  const signature = C.signDigest(C.personalSignDigest(ch.message), C.unhex(key));
  return (await http("/v1/auth/token", { message: ch.message, signature })).token;
}
const carlToken = await signInAs(CARL_KEY);
const carlReads = () => fetch(`${BASE}/v1/accounts/${ana.address}`, { headers: { authorization: `Bearer ${carlToken}`, "ayni-purpose": "care_coordination" } });
assert.equal((await carlReads()).status, 403);
await ana.page.locator("#privacy-link").click();
await ana.page.locator("#grant-kind").waitFor();
await checkLabels(ana.page, "privacy");
await ana.page.locator("#grant-kind").selectOption("account");
await ana.page.locator("#grant-who").fill(carlAddress);
await ana.page.locator("#grant-purpose").selectOption("care_coordination");
await ana.page.locator('#grant-categories input[value="account"]').check();
await ana.page.locator('#grant-categories input[value="balances"]').check();
await ana.page.getByRole("button", { name: "Give permission" }).click();
await ana.page.locator("#grants li").nth(1).waitFor();
assert.equal((await carlReads()).status, 200);
await ana.page.reload();
await ana.page.locator("#unlock-pass").fill(PASS);
await ana.page.locator("#unlock-pass").press("Enter");
await ana.page.locator("#access-log li", { hasText: "help with care exchanges" }).waitFor({ timeout: 30000 });
assert.match(await ana.page.locator("#access-log").textContent(), /read your account, your balances for help with care exchanges \(your permission\)/);
await shot(ana.page, "17-privacy");
for (let i = 0; i < 2; i++) {
  await ana.page.locator("#grants li button.danger").first().click();
  await ana.page.locator("#grants li").nth(1 - i).waitFor({ state: "detached" });
}
assert.equal((await carlReads()).status, 403);

// Spanish: the catalogue switches every string.
await ana.page.locator('nav a[href="#/settings"]').click();
await ana.page.locator("#lang").selectOption("es");
await ana.page.locator('nav a[href="#/"]').click();
await ana.page.locator("section.balance").first().waitFor();
assert.match(await hourCard.textContent(), /Todavía puedes gastar/);
await shot(ana.page, "16-home-es");

await browser.close();
process.stdout.write(JSON.stringify({ ana: ana.address, bea: bea.address, shop: shop.address, carl: carlAddress,
  firstSeq, anchorText, exported, passphrase: PASS, shots }) + "\n");
