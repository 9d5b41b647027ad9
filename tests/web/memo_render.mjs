// Defect 13.1 in the web app: a memo stored with control characters (older data) must render
// harmlessly. Driven by tests/test_web.py, which stores such memos directly in the database
// and passes AYNI_URL, KEYSTORE (file), PASS, REQUEST_ID, PAYEE, CHROMIUM, OUT.
// Prints one JSON line: the text each screen shows for the memo (history, requests, approval).
import { chromium } from "playwright-core";
import { mkdirSync } from "node:fs";
import { join } from "node:path";

const { AYNI_URL: BASE, KEYSTORE, PASS, REQUEST_ID, PAYEE, CHROMIUM, OUT } = process.env;
mkdirSync(OUT, { recursive: true });
const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ["--no-sandbox", "--disable-dev-shm-usage"] });
try {
  const ctx = await browser.newContext({ viewport: { width: 360, height: 740 }, locale: "en-GB" });
  const page = await ctx.newPage();
  page.on("pageerror", (e) => { throw new Error(`page error ${e}`); });
  await page.goto(BASE + "/#/key/import");
  await page.locator("#import-file").setInputFiles(KEYSTORE);
  await page.locator("#import-pass").fill(PASS);
  await page.locator("#import-pass").press("Enter");
  await page.locator("section.balance").first().waitFor({ timeout: 30000 });
  const shown = {};

  await page.locator('nav a[href="#/history"]').click();
  await page.locator("#history li .memo").first().waitFor({ timeout: 15000 });
  shown.history = await page.locator("#history li .memo").first().textContent();
  await page.screenshot({ path: join(OUT, "memo-history.png"), fullPage: true });

  await page.locator('nav a[href="#/requests"]').click();
  await page.locator("#requests li .memo").first().waitFor({ timeout: 15000 });
  shown.requests = await page.locator("#requests li .memo").first().textContent();

  await page.evaluate((h) => { location.hash = h; }, `#/pay?request=${REQUEST_ID}`);
  await page.locator("#confirm-memo").waitFor({ timeout: 15000 });
  shown.approval = await page.locator("#confirm-memo").textContent();
  shown.approvalSummary = await page.locator("#confirm-summary").textContent();
  await page.screenshot({ path: join(OUT, "memo-approval.png"), fullPage: true });

  // The app's own memo field refuses what the server refuses, with the catalogue's message.
  await page.locator('nav a[href="#/pay"]').click();
  await page.locator("#pay-memo").waitFor();
  await page.locator("#pay-to").fill(PAYEE);
  await page.locator("#pay-amount").fill("1");
  await page.locator("#pay-memo").fill("lunch \u001b[2K 5m");
  await page.locator("#pay-memo").press("Enter");
  const refusal = page.locator("#status [data-code]");
  await refusal.waitFor({ timeout: 10000 });
  shown.refusedCode = await refusal.getAttribute("data-code");
  shown.refusedText = await refusal.textContent();
  shown.memoInvalid = await page.locator("#pay-memo").getAttribute("aria-invalid");
  console.log(JSON.stringify(shown));
} finally {
  await browser.close();
}
