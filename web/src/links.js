// What the app accepts from outside: scanned QR text, link parameters, the server's sign-in
// challenge. Pure functions (no DOM), so node tests them directly.
import { parseAddress } from "./crypto.js";
import { MAX_AMOUNT } from "./amounts.js";

export const REQUEST_ID = /^0x[0-9a-f]{64}$/;

/** A scanned payment link -> the hash to open ("#/pay?request=0x…"), or null. Only a link
 * to this very app is followed, and only by changing the hash: a QR sticker saying
 * "javascript:…#/pay" or "https://elsewhere/#/pay" is never navigated to. */
export function payLinkHash(text, origin) {
  let url;
  try { url = new URL(String(text).trim()); } catch { return null; }
  if (url.origin !== origin || !/^#\/pay(\?|$)/.test(url.hash)) return null;
  return url.hash;
}

/** The parameters of a #/pay link, strictly: anything malformed is dropped, not guessed.
 * Payment requests carry only their id (the server's copy has the rest). */
export function payParams(params, currencies) {
  const out = {};
  const request = params.get("request");
  if (request !== null) out.request = REQUEST_ID.test(request) ? request : "invalid";
  const to = params.get("to");
  if (to) out.to = parseAddress(to) || undefined;
  const currency = params.get("currency");
  if (currency && currencies.some((c) => c.code === currency)) out.currency = currency;
  const amount = params.get("amount");
  if (amount && /^[1-9]\d{0,15}$/.test(amount) && Number(amount) <= MAX_AMOUNT) out.amount = Number(amount);
  return out;
}

function fail(detail) {
  const e = new Error(detail);
  e.code = "challenge_mismatch";
  throw e;
}

/** Check the server's EIP-4361 challenge before signing it: it must be for this site (the
 * domain line and URI), this key and this community's chain. A tampered or misconfigured
 * server could otherwise have the member sign a sign-in for another site. */
export function checkChallenge(message, { host, origin, address, chainId }) {
  const lines = String(message).split("\n");
  const field = (name) => {
    const line = lines.find((l) => l.startsWith(`${name}: `));
    return line === undefined ? fail(`the sign-in message has no ${name}`) : line.slice(name.length + 2);
  };
  const domain = lines[0].replace(/ wants you to sign in with your Ethereum account:$/, "");
  if (domain === lines[0] || domain !== host) fail(`the sign-in message is for ${domain.slice(0, 80)}, not ${host}`);
  if (lines[1] !== address) fail("the sign-in message is for another address");
  let uri;
  try { uri = new URL(field("URI")); } catch { fail("the sign-in message has no valid URI"); }
  if (uri.origin !== origin) fail(`the sign-in message is for ${uri.origin}, not ${origin}`);
  if (field("Chain ID") !== String(chainId)) fail("the sign-in message is for another chain");
  return true;
}
