// What the app accepts from outside: scanned QR text, link parameters, the server's sign-in
// challenge. Pure functions (no DOM), so node tests them directly.
import { parseAddress } from "./crypto.js";
import { MAX_AMOUNT } from "./amounts.js";

export const REQUEST_ID = /^0x[0-9a-f]{64}$/;

/** A scanned payment link -> the hash to open ("#/pay?request=0x…"), or null. Only a link
 * to this very app is followed, and only by changing the hash: a QR sticker saying
 * "javascript:…#/pay" or "https://elsewhere/#/pay" is never navigated to.
 * A link from an allied community's app (another origin) names its community: its payee,
 * currency, amount and community are carried over into THIS app's #/pay, nothing else (its
 * request id is the other node's, unknown here); the member reviews them before signing. */
export function payLinkHash(text, origin) {
  let url;
  try { url = new URL(String(text).trim()); } catch { return null; }
  if (!/^#\/pay(\?|$)/.test(url.hash)) return null;
  if (url.origin === origin) return url.hash;
  if (!/^https?:$/.test(url.protocol)) return null;
  const params = new URLSearchParams(url.hash.slice(url.hash.indexOf("?") + 1));
  const community = (params.get("community") || "").toLowerCase();
  if (!COMMUNITY.test(community) || !params.get("to")) return null;
  const kept = new URLSearchParams();
  for (const k of ["to", "currency", "amount", "community"]) if (params.get(k)) kept.set(k, params.get(k));
  return `#/pay?${kept}`;
}

const COMMUNITY = /^0x[0-9a-f]{64}$/;

/** The link a payee shares: this app's #/pay with the payee, and optionally a currency and an
 * amount (minor units) and a request id. `community` (this community's id) lets a member of an
 * allied community pay it from their own app; older apps ignore the parameter. */
export function payLink(base, { to, currency, amount, request, community }) {
  const p = new URLSearchParams();
  if (request) p.set("request", request);
  if (to) p.set("to", to);
  if (currency) p.set("currency", currency);
  if (amount) p.set("amount", String(amount));
  if (community) p.set("community", community.toLowerCase());
  return `${base}#/pay?${p}`;
}

/** The parameters of a #/pay link, strictly: anything malformed is dropped, not guessed.
 * Payment requests carry their id (the server's copy has the rest). `community`: the payee's
 * community when it is not necessarily this one; then `currency` and `amount` are the payee's
 * (what arrives there), so the currency is not checked against this community's. */
export function payParams(params, currencies) {
  const out = {};
  const request = params.get("request");
  if (request !== null) out.request = REQUEST_ID.test(request) ? request : "invalid";
  const to = params.get("to");
  if (to) out.to = parseAddress(to) || undefined;
  const community = params.get("community");
  if (community !== null) out.community = COMMUNITY.test(community.toLowerCase()) ? community.toLowerCase() : "invalid";
  const currency = params.get("currency");
  if (currency && (out.community ? /^[A-Z][A-Z0-9]{1,11}$/.test(currency) : currencies.some((c) => c.code === currency))) {
    out.currency = currency;
  }
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
