// A member of community A pays a member of allied community B from the web app (issue 15):
// B's member shares a link to pay them (naming B's community); A's member pastes it into
// their own app, sees the rate and both amounts, signs the RemoteTransfer in the browser and
// gets the receipt; both histories show the payment with both amounts. Driven by
// tests/test_web_federation.py: A_URL, B_URL, A_KEYSTORE, B_KEYSTORE, PASS, B_COMMUNITY, OUT,
// CHROMIUM. Prints one JSON line: {paymentId, link, shots}.
import { chromium } from "playwright-core";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { join } from "node:path";

const { A_URL, B_URL, A_KEYSTORE, B_KEYSTORE, PASS, B_COMMUNITY, OUT, CHROMIUM } = process.env;
mkdirSync(OUT, { recursive: true });
const shots = [];
async function shot(page, name) {
  // A 360 px screen must never scroll sideways.
  const width = await page.evaluate(() => document.documentElement.scrollWidth);
  assert.ok(width <= 360, `${name}: page is ${width}px wide at 360px`);
  const text = await page.evaluate(() => document.body.innerText);
  assert.doesNotMatch(text, /\bnull\b|\bundefined\b|\{\w+\}|NaN/, `${name}: ${text}`);
  await page.screenshot({ path: join(OUT, `${name}.png`), fullPage: true });
  shots.push(`${name}.png`);
}
const step = (s) => process.stderr.write(`- ${s}\n`);

const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ["--no-sandbox", "--disable-dev-shm-usage"] });
const cspViolations = [];
async function member(base, keystore, locale) {
  const ctx = await browser.newContext({ viewport: { width: 360, height: 740 }, locale, deviceScaleFactor: 1 });
  ctx.on("console", (m) => { if (/Content.Security.Policy|Refused to/i.test(m.text())) cspViolations.push(m.text()); });
  const page = await ctx.newPage();
  page.on("pageerror", (e) => { throw new Error(`page error ${e}`); });
  await page.goto(base + "/#/key/import");
  await page.locator("#import-file").setInputFiles(keystore);
  await page.locator("#import-pass").fill(PASS);
  await page.locator("#import-pass").press("Enter");
  await page.locator("section.balance").first().waitFor({ timeout: 30000 });
  return page;
}

try {
  // B's member: a link to pay them 1.5 hours, naming their community
  const bea = await member(B_URL, B_KEYSTORE, "en-GB");
  await bea.locator("#pay-me summary").click();
  await bea.locator("#link-currency").selectOption("HOUR");
  await bea.locator("#link-amount").fill("1.5");
  const link = await bea.locator("#my-pay-link").inputValue();
  assert.match(link, new RegExp(`^${B_URL}/#/pay\\?to=0x[0-9a-fA-F]{40}&currency=HOUR&amount=90&community=${B_COMMUNITY}$`), link);
  await shot(bea, "fed-01-pay-me-link");
  step(`B's link: ${link}`);

  // A's member pastes it into their own app: the remote form, pre-filled, with the rate
  const ana = await member(A_URL, A_KEYSTORE, "en-GB");
  await ana.locator('nav a[href="#/pay"]').click();
  await ana.locator("#pay-to").fill(link);
  await ana.locator("#pay-to").press("Enter");
  await ana.locator("#remote-quote").waitFor({ timeout: 15000 });
  assert.equal(new URL(ana.url()).origin, A_URL, "the app stayed on its own origin");
  assert.match(await ana.locator("#remote-community").textContent(), new RegExp(B_COMMUNITY.slice(0, 8)));
  assert.match(await ana.locator("#remote-requested").textContent(), /They asked for 1\.5 hours\./);
  // the rate is 1 HOUR here = 2 HOUR there: 45 minutes here deliver 1.5 hours there
  assert.match(await ana.locator("#remote-quote").textContent(), /They receive 1\.5 hours\. Rate: 1 HOUR = 2 HOUR, rounded down\./);
  assert.equal(await ana.locator("#pay-to").inputValue(), link.match(/to=(0x[0-9a-fA-F]{40})/)[1]);
  await ana.locator("#pay-memo").fill("seeds");
  await shot(ana, "fed-02-remote-form");
  await ana.locator("#pay-memo").press("Enter");

  // the exact document: both amounts, the payee's community, this community's domain
  await ana.locator("#typed-data").waitFor({ timeout: 15000 });
  const typed = await ana.locator("#typed-data").textContent();
  assert.match(typed, new RegExp(`payeeCommunity${B_COMMUNITY}`));
  assert.match(typed, /currencyHOURamount45 \(45m\)payeeCurrencyHOURdelivered90/);
  assert.match(await ana.locator("#confirm-summary").textContent(), /You pay 45 minutes here; 0x.{6}….{6} receives 1\.5 hours in cooperative 0x/);
  await shot(ana, "fed-03-remote-confirm");
  await ana.locator("#sign-and-pay").click();

  // the receipt: completed, both amounts
  await ana.locator("#remote-receipt").waitFor({ timeout: 20000 });
  for (let i = 0; i < 20 && (await ana.locator("#remote-receipt").getAttribute("data-status")) === "pending"; i++) {
    await new Promise((r) => setTimeout(r, 500));
    await ana.locator("#remote-refresh").click();
    await ana.locator("#remote-receipt").waitFor();
  }
  assert.equal(await ana.locator("#remote-receipt").getAttribute("data-status"), "completed");
  assert.equal(await ana.locator("#remote-here").textContent(), "45 minutes");
  assert.equal(await ana.locator("#remote-there").textContent(), "1.5 hours");
  const paymentId = ana.url().match(/#\/remote\/(0x[0-9a-f]{64})/)[1];
  await shot(ana, "fed-04-remote-receipt");
  step(`paid: ${paymentId}`);

  // both histories: a remote payment, both amounts, never a payment to the peer account
  await ana.locator('nav a[href="#/history"]').click();
  const rowA = ana.locator(`#history li.remote[data-payment="${paymentId}"]`);
  await rowA.waitFor({ timeout: 15000 });
  assert.match(await rowA.textContent(), /^−45 minutes \(1\.5 hours there\) to 0x.{6}….{6} in cooperative 0x.{6}….{4} · seeds/);
  assert.equal(await ana.locator("#older").isVisible(), false);
  await shot(ana, "fed-05-history-payer");

  // refused by B's node (no such member there): the reason shown, nothing paid, and the
  // history lists it as failed, its amount not counted as paid
  const nobody = "0x" + "00".repeat(19) + "01";
  await ana.locator('nav a[href="#/pay"]').click();
  await ana.locator("#pay-to").fill(`${B_URL}/#/pay?to=${nobody}&community=${B_COMMUNITY}`);
  await ana.locator("#pay-to").press("Enter");
  await ana.locator("#remote-quote").waitFor({ timeout: 15000 });
  await ana.locator("#pay-amount").fill("10m");
  await ana.locator("#pay-amount").press("Enter");
  await ana.locator("#sign-and-pay").click();
  const refusal = ana.locator('#status [data-code="unknown_account"]');
  await refusal.waitFor({ timeout: 20000 });
  await shot(ana, "fed-05b-refused-by-their-node");
  await ana.locator('nav a[href="#/history"]').click();
  const failed = ana.locator("#history li.remote.failed");
  await failed.waitFor({ timeout: 15000 });
  assert.match(await failed.textContent(), /^10 minutes \(20 minutes there\) to 0x000000…000001 in cooperative 0x.{6}….{4} · Failed: not paid, the hold was returned/);
  assert.equal(await ana.locator("#history li").count(), 2);

  await bea.locator('nav a[href="#/history"]').click();
  const rowB = bea.locator(`#history li.remote.in[data-payment="${paymentId}"]`);
  await rowB.waitFor({ timeout: 15000 });
  assert.match(await rowB.textContent(), /^\+1\.5 hours \(45 minutes there\) from 0x.{6}….{6} in cooperative 0x/);
  await rowB.locator("a").click();
  await bea.locator("#remote-receipt").waitFor({ timeout: 15000 });
  assert.equal(await bea.locator("#remote-receipt").getAttribute("data-status"), "completed");
  await shot(bea, "fed-06-receipt-payee");

  // Spanish: the same receipt
  await bea.locator('nav a[href="#/settings"]').click();
  await bea.locator("#lang").selectOption("es");
  await bea.evaluate((h) => { location.hash = h; }, `#/remote/${paymentId}`);
  await bea.locator("#remote-receipt").waitFor({ timeout: 15000 });
  assert.match(await bea.locator("#remote-status").textContent(), /Completado/);
  await shot(bea, "fed-07-receipt-payee-es");

  assert.deepEqual(cspViolations, [], "the app broke its Content-Security-Policy");
  console.log(JSON.stringify({ paymentId, link, shots }));
} finally {
  await browser.close();
}
