// The exchange board in a real browser (Debian's Chromium via playwright-core) against a real
// `ayni serve`. Driven by tests/test_web_board.py, which passes AYNI_URL, TREASURER_KEY,
// OUT (screenshot dir), CHROMIUM. Carla (a carer) and Cris (a client) use only the browser;
// the treasurer opens accounts and hides a listing over HTTP with the app's signing module.
// Prints one JSON line for the Python side to check against the ledger.
import { chromium } from "playwright-core";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import assert from "node:assert/strict";
import * as C from "../../web/src/crypto.js";

const { AYNI_URL: BASE, TREASURER_KEY, OUT, CHROMIUM } = process.env;
mkdirSync(OUT, { recursive: true });
const PASS = "a long passphrase 1";
const step = (m) => process.stderr.write(`[board] ${m}\n`);

async function http(path, body, token) {
  const headers = { "content-type": "application/json" };
  if (token) headers.authorization = `Bearer ${token}`;
  const res = await fetch(BASE + path, body ? { method: "POST", headers, body: JSON.stringify(body) } : { headers });
  const data = await res.json();
  if (!res.ok) throw new Error(`${path}: ${res.status} ${JSON.stringify(data)}`);
  return data;
}
const community = await http("/v1/community");
const typesFor = (primary) => ({ EIP712Domain: community.types.EIP712Domain, [primary]: community.types[primary] });
async function openAccount(account, role) {
  const message = { account, role, nonce: C.newNonce(), validUntil: String(Math.floor(Date.now() / 1000) + 600) };
  const signature = C.signDigest(C.typedDataDigest({ types: typesFor("OpenAccount"), domain: community.domain, primaryType: "OpenAccount", message }), C.unhex(TREASURER_KEY));
  return http("/v1/admin/actions", { type: "OpenAccount", message, signature });
}
async function signInAs(key) {
  const ch = await http("/v1/auth/challenge", { address: C.addressOfKey(C.unhex(key)) });
  return (await http("/v1/auth/token", { message: ch.message, signature: C.signDigest(C.personalSignDigest(ch.message), C.unhex(key)) })).token;
}

const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ["--no-sandbox", "--disable-dev-shm-usage"] });
const cspViolations = [];
// Every read of the board's listings the app makes, to check each names the purpose.
const listingReads = [];
async function phone(locale) {
  const ctx = await browser.newContext({ viewport: { width: 360, height: 740 }, locale, deviceScaleFactor: 1 });
  ctx.on("console", (m) => { if (/Content.Security.Policy|Refused to/i.test(m.text())) cspViolations.push(m.text()); });
  ctx.on("request", (r) => {
    const u = new URL(r.url());
    if (r.method() === "GET" && /^\/v1\/listings(\/[0-9a-f]{32})?$/.test(u.pathname)) listingReads.push(u.pathname + u.search);
  });
  return ctx;
}
const shots = [];
async function shot(page, name) {
  // A 360 px screen must never scroll sideways.
  const width = await page.evaluate(() => document.documentElement.scrollWidth);
  assert.ok(width <= 360, `${name}: page is ${width}px wide at 360px`);
  const text = await page.evaluate(() => document.body.innerText);
  assert.doesNotMatch(text, /\bnull\b|\bundefined\b|\{\w+\}|NaN|board\.\w/, `${name}: ${text}`);
  await page.screenshot({ path: join(OUT, `${name}.png`), fullPage: true });
  shots.push(`${name}.png`);
}
async function checkLabels(page, where) {
  const unlabelled = await page.evaluate(() => [...document.querySelectorAll("main input, main select, main textarea")]
    .filter((el) => el.type !== "hidden" && !(el.labels && el.labels.length) && !el.getAttribute("aria-label")).map((el) => el.id || el.outerHTML));
  assert.deepEqual(unlabelled, [], `${where}: inputs without a label`);
}
async function tabOrder(page, n) {
  await page.locator("#screen-title").focus();
  const order = [];
  for (let i = 0; i < n; i++) {
    await page.keyboard.press("Tab");
    order.push(await page.evaluate(() => document.activeElement.id || document.activeElement.getAttribute("href") || document.activeElement.value));
  }
  return order;
}

async function newMember(ctx, name) {
  const page = await ctx.newPage();
  page.on("pageerror", (e) => { throw new Error(`${name}: page error ${e}`); });
  await page.goto(BASE + "/");
  await page.locator('a[href="#/key/new"]').click();
  await page.locator("#new-pass").fill(PASS);
  await page.locator("#new-pass-again").fill(PASS);
  await page.locator("#new-pass").press("Enter");
  await page.locator("#backup-done").click({ timeout: 20000 });
  const address = (await page.locator("#my-address").textContent({ timeout: 20000 })).trim();
  await openAccount(address, "member");
  await page.locator("#retry-sign-in").click();
  await page.locator("section.balance").first().waitFor();
  step(`${name} signed in as ${address}`);
  return { page, address };
}
// Open a screen by its hash (the same hash again reloads it, as the menu does).
const go = async (page, hash, ready) => {
  await page.evaluate((h) => { if (location.hash === h) window.dispatchEvent(new HashChangeEvent("hashchange")); else location.hash = h; }, hash);
  await page.locator(ready).first().waitFor();
};

const carla = await newMember(await phone("en-GB"), "Carla");
const cris = await newMember(await phone("en-GB"), "Cris");

// Carla posts an offer (and a second one in another category), from the menu entry.
await carla.page.locator('nav a[href="#/board"]').click();
await carla.page.locator("#board-q").waitFor();
await carla.page.locator('a[href="#/board/new"]').click();
await carla.page.locator("#lst-title").waitFor();
await checkLabels(carla.page, "post a listing");
// Keyboard: from the screen title, Tab walks the board's menu, then the form top to bottom.
assert.deepEqual(await tabOrder(carla.page, 15), ["#/board", "#/board/new", "#/board/mine", "#/board/talks", "lst-kind-offer",
  "lst-title", "lst-description", "lst-category", "lst-area", "lst-currency", "lst-unit", "lst-price", "lst-availability", "lst-days", "lst-save"]);
await carla.page.locator("#lst-title").fill("Elderly care, weekday mornings");
await carla.page.locator("#lst-description").fill("Company, walks and help with shopping.\nTwenty years of experience.");
await carla.page.locator("#lst-category").selectOption("elderly_care");
await carla.page.locator("#lst-area").selectOption("centro");
await carla.page.locator("#lst-currency").selectOption("HOUR");
await carla.page.locator("#lst-unit").selectOption("hour");
await carla.page.locator("#lst-price").fill("1h");
await carla.page.locator("#lst-availability").fill("weekday mornings");
await shot(carla.page, "b01-post-offer");
await carla.page.locator("#lst-save").click();
await carla.page.locator("p.status[data-status=active]").waitFor();
const offerId = new URL(carla.page.url()).hash.match(/listing\/([0-9a-f]{32})/)[1];
assert.match(await carla.page.locator("main").textContent(), /Elderly care, weekday mornings.*1 hour per hour/s);
await shot(carla.page, "b02-own-listing");
// A second offer, in another category: the filters must tell them apart.
await carla.page.locator('a[href="#/board/new"]').click();
await carla.page.locator("#lst-title").fill("Home cooking for the week");
await carla.page.locator("#lst-description").fill("Soups and stews, delivered.");
await carla.page.locator("#lst-category").selectOption("cooking");
await carla.page.locator("#lst-unit").selectOption("agree");
assert.ok(await carla.page.locator("#lst-price").isHidden(), "a price to agree asks no price");
await carla.page.locator("#lst-save").click();
await carla.page.locator("p.status[data-status=active]").waitFor();
const cookingId = new URL(carla.page.url()).hash.match(/listing\/([0-9a-f]{32})/)[1];
step(`Carla posted ${offerId} and ${cookingId}`);

// Cris browses: both are there (newest first), and nothing says who posted them.
await cris.page.locator('nav a[href="#/board"]').click();
await cris.page.locator("#listings li").nth(1).waitFor();
await checkLabels(cris.page, "browse");
assert.deepEqual(await tabOrder(cris.page, 11), ["#/board", "#/board/new", "#/board/mine", "#/board/talks",
  "board-q", "board-kind", "board-category", "board-area", "board-currency", "board-order", "board-search"]);
const titles = async () => (await cris.page.locator("#listings li h2").allTextContents()).map((x) => x.trim());
assert.deepEqual(await titles(), ["Home cooking for the week", "Elderly care, weekday mornings"]);
assert.doesNotMatch(await cris.page.locator("main").innerText(), new RegExp(carla.address.slice(2, 10), "i"), "a search result shows its author");
// The only two orders the board knows; nothing else to choose.
assert.deepEqual(await cris.page.locator("#board-order option").evaluateAll((o) => o.map((x) => x.value)), ["newest", "shuffle"]);
await cris.page.locator("#board-purpose summary").click();
assert.match(await cris.page.locator("#board-purpose").innerText(), /purpose .exchange.*members, shops and treasurers/s);
// and exactly as the policy the server applies states it
await cris.page.locator("#board-policy dl").waitFor();
assert.match(await cris.page.locator("#board-policy").innerText(), /Purpose\s+exchange\s+Who may read\s+member, shop, treasurer\s+Which data\s+listings/);
await shot(cris.page, "b03-browse");
// by category
await cris.page.locator("#board-category").selectOption("elderly_care");
await cris.page.locator("#board-search").click();
await cris.page.waitForURL(/category=elderly_care/);
await cris.page.locator("#listings li").first().waitFor();
assert.deepEqual(await titles(), ["Elderly care, weekday mornings"]);
await shot(cris.page, "b04-by-category");
// by text: whole words, every one must occur
await go(cris.page, "#/board", "#board-q");
await cris.page.locator("#listings li").nth(1).waitFor();
await cris.page.locator("#board-q").fill("walks shopping");
await cris.page.locator("#board-q").press("Enter");
await cris.page.waitForURL(/q=walks/);
await cris.page.locator("#listings li").first().waitFor();
assert.deepEqual(await titles(), ["Elderly care, weekday mornings"]);
await go(cris.page, "#/board?q=walks%20soups", "#board-empty");
// today's shuffle: the same listings, in the day's order
await go(cris.page, "#/board?order=shuffle", "#listings li");
await cris.page.locator("#listings li").nth(1).waitFor();
assert.deepEqual((await titles()).sort(), ["Elderly care, weekday mornings", "Home cooking for the week"]);
assert.match(await cris.page.locator("main").innerText(), /Today's shuffle: the same order for everyone/);

// Cris writes: "I'm interested" opens a private conversation with the author.
await go(cris.page, "#/board?category=elderly_care", "#listings li a");
await cris.page.locator("#listings li a").first().click();
await cris.page.locator("#answer-text").waitFor();
await checkLabels(cris.page, "listing");
assert.match(await cris.page.locator("#listing").innerText(), /Twenty years of experience/);
await shot(cris.page, "b05-listing");
await cris.page.locator("#answer-text").fill("Hello! Could you come on Monday mornings for my mother?");
await cris.page.getByRole("button", { name: "I'm interested" }).click();
await cris.page.locator("#messages li").first().waitFor();
const convId = new URL(cris.page.url()).hash.match(/talk\/([0-9a-f]+)/)[1];
assert.match(await cris.page.locator("#other-address").textContent(), new RegExp(carla.address, "i"));

// Carla answers from "My conversations" and proposes an arrangement: 3 hours on Monday.
await go(carla.page, "#/board/talks", "#talks li a");
await carla.page.locator("#talks li a").first().click();
await carla.page.locator("#messages li").first().waitFor();
await checkLabels(carla.page, "conversation");
await carla.page.locator("#msg-text").fill("Yes, Monday 9 to 12 works. 3 hours.");
await carla.page.locator("#msg-send").click();
await carla.page.locator("#messages li").nth(1).waitFor();
assert.equal(await carla.page.locator("#arr-currency").inputValue(), "HOUR", "the proposal starts in the listing's currency");
await carla.page.locator("#arr-what").fill("Elderly care, Monday morning");
await carla.page.locator("#arr-when").fill("Monday 9:00-12:00");
await carla.page.locator("#arr-amount").fill("3h");
await carla.page.locator("#arr-propose").click();
await carla.page.locator("#arrangements li[data-status=proposed]").waitFor();
assert.match(await carla.page.locator("#arrangements").innerText(), /Waiting for the other person to agree/);
await shot(carla.page, "b06-proposed");

// Cris agrees (with the keyboard).
await cris.page.locator("#msg-refresh").click();
await cris.page.locator("#arrangements li[data-status=proposed]").waitFor();
assert.match(await cris.page.locator("#messages").innerText(), /Yes, Monday 9 to 12 works/);
assert.match(await cris.page.locator("#arrangements").innerText(), /3 hours.*They do the work; you pay/s);
await shot(cris.page, "b07-to-agree");
await cris.page.locator('#arrangements button[data-action=accept]').focus();
await cris.page.keyboard.press("Enter");
await cris.page.locator("#arrangements li[data-status=accepted]").waitFor();

// Carla does the work and asks for the payment: the ordinary payment request, linked.
await carla.page.locator("#msg-refresh").click();
await carla.page.locator("#arrangements li[data-status=accepted]").waitFor();
const arrId = await carla.page.locator("#arrangements li[data-status=accepted]").getAttribute("data-id");
await carla.page.locator(`#bill-memo-${arrId}`).fill("care on Monday");
await shot(carla.page, "b08-accepted");
await carla.page.getByRole("button", { name: "Ask for the payment" }).click();
await carla.page.locator("#request-status").waitFor();
const requestId = new URL(carla.page.url()).hash.match(/request\/(0x[0-9a-f]{64})/)[1];
await shot(carla.page, "b09-payment-request");

// Cris approves it in the usual requests screen and signs.
await cris.page.locator('nav a[href="#/requests"]').click();
const incoming = cris.page.locator(`#requests li[data-id="${requestId}"]`);
await incoming.waitFor();
assert.match(await incoming.innerText(), /3 hours/);
assert.match(await incoming.innerText(), /care on Monday/);
await shot(cris.page, "b10-requests");
await incoming.getByRole("link", { name: "Review and pay" }).click();
await cris.page.locator("#sign-and-pay").waitFor();
assert.match(await cris.page.locator("#typed-data").textContent(), new RegExp(`payee${carla.address}currencyHOURamount180 \\(3h\\).*requestId${requestId}`, "s"));
await cris.page.locator("#sign-and-pay").click();
await cris.page.locator("#receipt").waitFor();
const paidSeq = Number(new URL(cris.page.url()).hash.match(/#\/tx\/(\d+)/)[1]);
// Carla's request screen sees it paid by itself; the arrangement reads "Paid".
await carla.page.locator("#request-status", { hasText: "Paid" }).waitFor({ timeout: 15000 });
await go(carla.page, `#/board/talk/${convId}`, "#arrangements li");
await carla.page.locator("#arrangements li[data-status=paid]").waitFor();
// A private thank-you note: only its recipient reads it; nothing counts it.
await carla.page.locator(`#arrangements li[data-status=paid] summary`).click();
await carla.page.locator(`#thanks-${arrId}`).fill("Thank you, it was a pleasure.");
await carla.page.getByRole("button", { name: "Send the note" }).click();
await carla.page.getByText("Your note was sent.").waitFor();
await shot(carla.page, "b11-paid");
await go(cris.page, `#/board/talk/${convId}`, "#arrangements li[data-status=paid]");
assert.match(await cris.page.locator("#arrangements").innerText(), /Thank you, it was a pleasure/);

// Balances and history in the app.
await cris.page.locator('nav a[href="#/"]').click();
assert.match(await cris.page.locator('section.balance[data-currency="HOUR"]').innerText(), /Balance: -3 hours/);
await carla.page.locator('nav a[href="#/"]').click();
assert.match(await carla.page.locator('section.balance[data-currency="HOUR"]').innerText(), /Balance: 3 hours/);
await cris.page.locator('nav a[href="#/history"]').click();
await cris.page.locator("#history li").first().waitFor();
assert.match(await cris.page.locator("#history li").first().innerText(), /−3 hours to .* · care on Monday/);

// A second arrangement, cancelled by Cris: no reason asked.
await go(carla.page, `#/board/talk/${convId}`, "#arr-what");
await carla.page.locator("#arr-what").fill("One more morning");
await carla.page.locator("#arr-amount").fill("2h");
await carla.page.locator("#arr-propose").click();
await carla.page.locator("#arrangements li[data-status=proposed]").waitFor();
await go(cris.page, `#/board/talk/${convId}`, "#arrangements li[data-status=proposed]");
await cris.page.locator("#arrangements li[data-status=proposed] button[data-action=cancel]").click();
await cris.page.locator("#arrangements li[data-status=cancelled]").waitFor();
assert.match(await cris.page.locator("#arrangements li[data-status=cancelled]").innerText(), /No reason is asked/);

// My listings: Carla pauses the cooking offer (gone from the board), opens it again, closes it.
await go(carla.page, "#/board/mine", "#my-listings li");
const cooking = carla.page.locator(`#my-listings li[data-id="${cookingId}"]`);
await cooking.locator("button[data-action=pause]").click();
await carla.page.locator(`#my-listings li[data-id="${cookingId}"] p.status[data-status=paused]`).waitFor();
await go(cris.page, "#/board?q=soups", "#board-empty");
await carla.page.locator(`#my-listings li[data-id="${cookingId}"] button[data-action=resume]`).click();
await carla.page.locator(`#my-listings li[data-id="${cookingId}"] p.status[data-status=active]`).waitFor();
await go(cris.page, "#/board?q=soups", "#listings li");
// edit: a new title, found by its new words
await carla.page.locator(`#my-listings li[data-id="${cookingId}"] a[href="#/board/edit/${cookingId}"]`).click();
await carla.page.locator("#lst-title").fill("Home cooking and baking for the week");
await carla.page.locator("#lst-save").click();
await carla.page.locator("p.status[data-status=active]").waitFor();
await go(cris.page, "#/board?q=baking", "#listings li");
await go(carla.page, "#/board/mine", "#my-listings li");
await carla.page.locator(`#my-listings li[data-id="${cookingId}"] button[data-action=close]`).click();
await carla.page.locator(`#my-listings li[data-id="${cookingId}"] p.status[data-status=closed]`).waitFor();

// A moderator hides the care offer with a reason; Carla sees the reason, Cris no longer the offer.
const treasurerToken = await signInAs(TREASURER_KEY);
await http(`/v1/listings/${offerId}/hide`, { reason: "Please do not post a phone number in the description." }, treasurerToken);
await go(carla.page, "#/board/mine", "#my-listings li");
assert.match(await carla.page.locator(`#my-listings li[data-id="${offerId}"] .hidden-reason`).innerText(),
  /Hidden by a moderator on .*Please do not post a phone number/s);
await shot(carla.page, "b12-my-listings-hidden");
await carla.page.locator(`#my-listings li[data-id="${offerId}"] h2 a`).click();
await carla.page.locator("#moderation li").waitFor();
assert.match(await carla.page.locator("#moderation").innerText(), /Hidden on .*phone number/s);
await shot(carla.page, "b13-moderation-log");
await go(cris.page, "#/board?category=elderly_care", "#board-empty");
// a link to it now says plainly that it is not there, with the API's reason
await go(cris.page, `#/board/listing/${offerId}`, '.error[data-code="unknown_listing"]');
assert.match(await cris.page.locator(".error").innerText(), /This listing is not there any more/);
await http(`/v1/listings/${offerId}/unhide`, { reason: "Fixed." }, treasurerToken);
step("English flow done");

// Spanish: Sofía (es-ES) finds the offer by category and words, writes, agrees; pays from the
// arrangement's own "Revisar y pagar".
const sofia = await newMember(await phone("es-ES"), "Sofía");
await sofia.page.locator('nav a[href="#/board"]').click();
await sofia.page.locator("h1", { hasText: "Ofertas y necesidades" }).waitFor();
await sofia.page.locator("#listings li").first().waitFor();
assert.equal(await sofia.page.locator('#board-category option[value="elderly_care"]').textContent(), "Cuidado de mayores");
await sofia.page.locator("#board-category").selectOption("elderly_care");
await sofia.page.locator("#board-q").fill("compras");
await sofia.page.locator("#board-search").click();
await sofia.page.locator("#board-empty").waitFor(); // the listing is in English: whole words, no guessing
assert.match(await sofia.page.locator("#board-empty").textContent(), /Ningún anuncio coincide/);
await sofia.page.locator("#board-q").fill("shopping");
await sofia.page.locator("#board-search").click();
await sofia.page.waitForURL(/q=shopping/);
await sofia.page.locator("#listings li").first().waitFor();
assert.match(await sofia.page.locator("#listings li").first().innerText(), /OFERTA|Oferta/);
assert.match(await sofia.page.locator("#listings li").first().innerText(), /1 hora por hora/);
await shot(sofia.page, "b14-es-browse");
await sofia.page.locator("#listings li a").first().click();
await sofia.page.locator("#answer-text").fill("Hola, ¿podrías el miércoles por la tarde?");
await sofia.page.getByRole("button", { name: "Me interesa" }).click();
await sofia.page.locator("#messages li").first().waitFor();
await sofia.page.locator("#arr-what").fill("Cuidado el miércoles");
await sofia.page.locator("#arr-when").fill("miércoles 16-17:30");
await sofia.page.locator("#arr-amount").fill("1,5");
await sofia.page.locator("#arr-propose").click();
await sofia.page.locator("#arrangements li[data-status=proposed]").waitFor();
assert.match(await sofia.page.locator("#arrangements").innerText(), /Propuesto.*1,5 horas.*La otra persona hace el trabajo; tú pagas.*Esperando a que la otra persona acepte/s);
await shot(sofia.page, "b15-es-proposed");
const convEs = new URL(sofia.page.url()).hash.match(/talk\/([0-9a-f]+)/)[1];
await go(carla.page, `#/board/talk/${convEs}`, "#arrangements li[data-status=proposed]");
await carla.page.locator("#arrangements button[data-action=accept]").click();
await carla.page.locator("#arrangements li[data-status=accepted]").waitFor();
await carla.page.getByRole("button", { name: "Ask for the payment" }).click();
await carla.page.locator("#request-status").waitFor();
const requestEs = new URL(carla.page.url()).hash.match(/request\/(0x[0-9a-f]{64})/)[1];
await sofia.page.locator("#msg-refresh").click();
await sofia.page.locator("#arrangements li[data-status=payment_requested]").waitFor();
assert.match(await sofia.page.locator("#arrangements").innerText(), /Pago pedido.*también está en tus Solicitudes/s);
await shot(sofia.page, "b16-es-pay-asked");
await sofia.page.getByRole("link", { name: "Revisar y pagar" }).click();
await sofia.page.locator("#sign-and-pay").waitFor();
assert.match(await sofia.page.locator("#typed-data").textContent(), new RegExp(`currencyHOURamount90 .*requestId${requestEs}`, "s"));
await sofia.page.locator("#sign-and-pay").click();
await sofia.page.locator("#receipt").waitFor();
await go(sofia.page, `#/board/talk/${convEs}`, "#arrangements li[data-status=paid]");
assert.match(await sofia.page.locator("#arrangements").innerText(), /Pagado/);
await shot(sofia.page, "b17-es-paid");
// her own listing, in Spanish: a need at a price to agree
await go(sofia.page, "#/board/new", "#lst-title");
await sofia.page.locator("#lst-kind-need").check();
await sofia.page.locator("#lst-title").fill("Ayuda con la compra");
await sofia.page.locator("#lst-category").selectOption("errands");
await sofia.page.locator("#lst-area").selectOption("norte");
await sofia.page.locator("#lst-unit").selectOption("agree");
await sofia.page.locator("#lst-days").fill("120");
await sofia.page.locator("#lst-save").click();
assert.equal(await sofia.page.locator("#lst-days").getAttribute("aria-invalid"), "true");
assert.match(await sofia.page.locator("#status").innerText(), /número entero de días del 1 al 90/);
await sofia.page.locator("#lst-days").fill("5");
await shot(sofia.page, "b18-es-post-need");
// submitted from the keyboard (Enter in the field), as a member without a pointer would
await sofia.page.locator("#lst-days").press("Enter");
await sofia.page.locator("p.status[data-status=active]").waitFor();
assert.match(await sofia.page.locator("main").innerText(), /NECESIDAD|Necesidad/);
assert.match(await sofia.page.locator("main").innerText(), /Precio a acordar.*Estado: abierto/s);
await shot(sofia.page, "b19-es-own-need");

await browser.close();
assert.deepEqual(cspViolations, [], "the app broke its Content-Security-Policy");
// Every read of other members' listings named the purpose `exchange`.
assert.ok(listingReads.length >= 10, listingReads.join("\n"));
for (const r of listingReads) assert.match(r, /[?&]purpose=exchange(&|$)/, r);
process.stdout.write(JSON.stringify({ carla: carla.address, cris: cris.address, sofia: sofia.address, offerId, cookingId, convId, convEs,
  arrId, requestId, requestEs, paidSeq, shots, listingReads: listingReads.length }) + "\n");
