// The shop till's HTTP calls (docs/shops.md, the contract in SHOP_API.md). Nothing custodial:
// the server prepares requests and refunds, the shop's and the customer's browsers sign.
import { api } from "./api.js";
import { keccak, hex, unhex } from "./crypto.js";

const enc = encodeURIComponent;
const q = (o) => new URLSearchParams(Object.entries(o).filter(([, v]) => v !== null && v !== undefined && v !== "")).toString();

export const shop = (address) => api(`/v1/shops/${enc(address)}`);
export const saveProfile = (address, body) => api(`/v1/shops/${enc(address)}/profile`, { method: "PUT", body });
export const openRequest = (body) => api("/v1/requests", { method: "POST", body });
export const checkout = (address, body) => api(`/v1/shops/${enc(address)}/checkouts`, { method: "POST", body });
export const shareName = (id) => api(`/v1/requests/${enc(id)}/share-name`, { method: "POST", body: {} });
export const feed = (address, after) => api(`/v1/shops/${enc(address)}/takings/feed?${q({ after, limit: 100 })}`);
export const refund = (seq, amount) => api(`/v1/transfers/${enc(seq)}/refunds`, { method: "POST", body: { amount } });
export const takings = (address, params) => api(`/v1/shops/${enc(address)}/takings?${q(params)}`);

/** The credit part of a mixed payment, as the server computes it: floor(total × share / 10000),
 * in integers (BigInt), so the till and the ledger never differ by a rounding. */
export const creditPart = (totalMinor, bp) => Number((BigInt(totalMinor) * BigInt(bp)) / 10000n);

/** The link a customer's phone opens: this app's standing code for the shop (and till). */
export const standingLink = (address, till) =>
  `${location.origin}${location.pathname}#/shop/${address}${till ? `?${q({ till })}` : ""}`;


/** The refund the server describes, checked before signing (as ayni-wallet does): back to the
 * payment's payer, in its currency, for the amount asked, and refundId = keccak256(keccak256(
 * "AyniRefund") ‖ digest ‖ uint256(nonce)) recomputed here. A lying server gets no signature. */
export function refundChecks(tx, r, minor) {
  const id = new Uint8Array(96);
  id.set(keccak(new TextEncoder().encode("AyniRefund")));
  id.set(unhex(tx.digest), 32);
  id.set(unhex(BigInt(r.refundNonce).toString(16).padStart(64, "0")), 64);
  return r.payee === tx.payer && r.currency === tx.currency && r.amount === minor && r.refundOf === tx.seq
    && String(r.refundId).toLowerCase() === hex(keccak(id));
}
