// What the web app accepts from outside (QR text, link parameters, the sign-in challenge,
// typed amounts) and how it formats amounts. Run: node --test tests/web/input.test.mjs
// (pytest runs it too).
import { test } from "node:test";
import assert from "node:assert/strict";
import { payLinkHash, payParams, payLink, checkChallenge } from "../../web/src/links.js";
import { parseAmount, formatAmount, MAX_AMOUNT } from "../../web/src/amounts.js";
import { CATALOGUES, human, setLanguage } from "../../web/src/i18n.js";

const ORIGIN = "https://ayni.example.org";
const CRED = { code: "CRED", style: "decimal", decimals: 2 };
const HOUR = { code: "HOUR", style: "time", decimals: 0 };
const ID = "0x" + "ab".repeat(32);

test("a scanned QR code is followed only as a link to this app's #/pay", () => {
  assert.equal(payLinkHash(`${ORIGIN}/#/pay?request=${ID}`, ORIGIN), `#/pay?request=${ID}`);
  assert.equal(payLinkHash(`${ORIGIN}/#/pay`, ORIGIN), "#/pay");
  for (const text of [
    "javascript:document.title='XSS';void 0//#/pay", "javascript:alert(1)//https://ayni.example.org/#/pay",
    "https://evil.example/#/pay?request=" + ID, "https://ayni.example.org.evil.example/#/pay",
    "http://ayni.example.org/#/pay", `${ORIGIN}/#/payload`, `${ORIGIN}/#/settings?x=#/pay`,
    "data:text/html,<script>1</script>#/pay", "0x7C01D2a57bD9aC83f5D9726Cab6FCA25f027bC0b", "not a url #/pay",
  ]) assert.equal(payLinkHash(text, ORIGIN), null, text);
});

test("link parameters are parsed strictly; a request id must be 32 bytes of lower-case hex", () => {
  const currencies = [CRED, HOUR];
  const p = (q) => payParams(new URLSearchParams(q), currencies);
  assert.deepEqual(p(`request=${ID}`), { request: ID });
  assert.deepEqual(p("request=0x12"), { request: "invalid" });
  assert.deepEqual(p(`request=${ID}%3Cscript%3E`), { request: "invalid" });
  assert.deepEqual(p("to=0x7c01d2a57bd9ac83f5d9726cab6fca25f027bc0b&currency=CRED&amount=1250"),
    { to: "0x7C01D2a57bD9aC83f5D9726Cab6FCA25f027bC0b", currency: "CRED", amount: 1250 });
  assert.deepEqual(p("to=0x7C01D2a57bD9aC83f5D9726Cab6FCA25f027bC0B&currency=NOPE&amount=0x10&memo=verified"),
    { to: undefined });
  for (const amount of ["1e3", "-5", "1.5", "012", " 5", String(MAX_AMOUNT + 1), "99999999999999999"]) {
    assert.equal(p(`amount=${encodeURIComponent(amount)}`).amount, undefined, amount);
  }
});

test("a link from an allied community's app carries its payee, currency, amount and community only", () => {
  const COM = "0x" + "1b".repeat(32);
  const payee = "0x7C01D2a57bD9aC83f5D9726Cab6FCA25f027bC0b";
  const link = payLink("https://coop-b.example/", { request: ID, to: payee, currency: "HOUR", amount: 90, community: COM.toUpperCase().replace("0X", "0x") });
  assert.equal(link, `https://coop-b.example/#/pay?request=${ID}&to=${payee}&currency=HOUR&amount=90&community=${COM}`);
  // another origin: only those four, never its request id (the other node's), never navigated to
  assert.equal(payLinkHash(link, ORIGIN), `#/pay?to=${payee}&currency=HOUR&amount=90&community=${COM}`);
  assert.equal(payLinkHash(link, "https://coop-b.example"), `#/pay?request=${ID}&to=${payee}&currency=HOUR&amount=90&community=${COM}`);
  for (const text of [`https://coop-b.example/#/pay?to=${payee}`, `https://coop-b.example/#/pay?to=${payee}&community=0x12`,
    `https://coop-b.example/#/pay?community=${COM}`, `javascript:x//#/pay?to=${payee}&community=${COM}`,
    `ftp://coop-b.example/#/pay?to=${payee}&community=${COM}`]) assert.equal(payLinkHash(text, ORIGIN), null, text);
  const p = (q) => payParams(new URLSearchParams(q), [CRED]);
  // with a community, the currency is the payee's (not checked against this community's)
  assert.deepEqual(p(`to=${payee}&currency=HOUR&amount=90&community=${COM}`), { to: payee, community: COM, currency: "HOUR", amount: 90 });
  assert.deepEqual(p(`to=${payee}&currency=hour&community=0x12`), { to: payee, community: "invalid" });
  assert.deepEqual(p("currency=HOUR"), {}); // no community: still only this community's currencies
});

const ADDRESS = "0x0c6C78f7274A93b337Fe4177034D8aDCe9Dd1807";
const challenge = ({ host = "ayni.example.org", address = ADDRESS, uri = ORIGIN, chain = "31337" } = {}) => [
  `${host} wants you to sign in with your Ethereum account:`, address, "", "Sign in to Ayni. This costs nothing and moves no money.", "",
  `URI: ${uri}`, "Version: 1", `Chain ID: ${chain}`, "Nonce: abcdefgh12345678", "Issued At: 2030-01-01T00:00:00Z",
  "Expiration Time: 2030-01-01T00:05:00Z"].join("\n");
const expect = { host: "ayni.example.org", origin: ORIGIN, address: ADDRESS, chainId: "31337" };

test("the sign-in challenge is checked before it is signed", () => {
  assert.equal(checkChallenge(challenge(), expect), true);
  assert.equal(checkChallenge(challenge({ uri: `${ORIGIN}/` }), expect), true);
  assert.equal(checkChallenge(challenge(), { ...expect, chainId: 31337 }), true);
  for (const bad of [{ host: "evil.example" }, { host: "ayni.example.org:8443" }, { address: "0xF2b142AC2987e5a86AfFC2b952628FcdC3d0AbfA" },
    { uri: "https://evil.example" }, { uri: "http://ayni.example.org" }, { uri: "not a uri" }, { chain: "1" }]) {
    assert.throws(() => checkChallenge(challenge(bad), expect), { code: "challenge_mismatch" }, JSON.stringify(bad));
  }
  assert.throws(() => checkChallenge("hello", expect), { code: "challenge_mismatch" });
});

test("'1,250' is refused as ambiguous; a decimal comma with 1, 2 or 4+ digits is not", () => {
  for (const text of ["1,250", "12,345,678", "1,250.00", "999,000"]) {
    assert.throws(() => parseAmount(CRED, text), { code: "amount_ambiguous" }, text);
  }
  assert.throws(() => parseAmount(HOUR, "1,250"), { code: "amount_ambiguous" });
  assert.equal(parseAmount(CRED, "12,50"), 1250);
  assert.equal(parseAmount(CRED, "1,5"), 150);
  assert.equal(parseAmount(HOUR, "1,5"), 90);
  assert.equal(parseAmount(CRED, "1250"), 125000);
  for (const text of ["1e3", "١٢", "１２", ".5", "1.000,50"]) assert.throws(() => parseAmount(CRED, text), { code: "amount_not_number" }, text);
});

test("amounts are formatted from integers: the largest amount loses no digit", () => {
  assert.equal(formatAmount(CRED, MAX_AMOUNT), "90071992547409.91");
  assert.equal(formatAmount(CRED, -MAX_AMOUNT), "-90071992547409.91");
  assert.equal(formatAmount({ code: "X", style: "decimal", decimals: 8 }, MAX_AMOUNT), "90071992.54740991");
  assert.equal(formatAmount(HOUR, MAX_AMOUNT), "150119987579016h31m");
  globalThis.document = { documentElement: {} }; // setLanguage marks <html lang>
  setLanguage("en");
  assert.equal(human(CRED, MAX_AMOUNT), "90,071,992,547,409.91 CRED");
  assert.equal(human(CRED, -1250), "-12.50 CRED");
  assert.equal(human(HOUR, 90), "1.5 hours");
  assert.equal(human(HOUR, 60), "1 hour");
  assert.equal(human(HOUR, 6 * 10 ** 14 + 6), "10,000,000,000,000.1 hours");
  setLanguage("es");
  assert.equal(human(CRED, MAX_AMOUNT), "90.071.992.547.409,91 CRED");
});

test("both catalogues have the same keys and placeholders", () => {
  const { en, es } = CATALOGUES;
  assert.deepEqual(Object.keys(es).sort(), Object.keys(en).sort());
  const holes = (s) => (s.match(/\{\w+\}/g) || []).sort().join();
  for (const k of Object.keys(en)) assert.equal(holes(es[k]), holes(en[k]), k);
});
