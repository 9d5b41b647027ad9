// Paying a member of an allied community (docs/federation.md, "The remote payment"): the
// alliance this node publishes, the amount delivered there at its rate, and the RemoteTransfer
// EIP-712 document the payer signs. Pure functions (no DOM, no fetch), so node tests them
// against ledger/core/federation.py (tests/test_web.py).

export const COMMUNITY_ID = /^0x[0-9a-f]{64}$/;

// The exact type string of ledger/core/federation.py REMOTE_TRANSFER_TYPE; the test compares
// this app's hashes with the Python ones for the same transfer.
export const REMOTE_TRANSFER_TYPE = "RemoteTransfer(address payer,bytes32 payeeCommunity,address payee,string currency," +
  "uint256 amount,string payeeCurrency,uint256 delivered,uint256 nonce,uint64 validUntil,bytes32 memoHash)";
export const REMOTE_TRANSFER_FIELDS = REMOTE_TRANSFER_TYPE.slice(REMOTE_TRANSFER_TYPE.indexOf("(") + 1, -1)
  .split(",").map((f) => { const [type, name] = f.split(" "); return { name, type }; });

/** The active alliance with `community` among GET /v1/federation/alliances items, or null
 * (a pending proposal or a suspended or ended alliance pays no one). */
export function allianceWith(items, community) {
  const wanted = String(community).toLowerCase();
  return (items || []).find((a) => a && String(a.peerCommunity).toLowerCase() === wanted && a.status === "active") || null;
}

/** The currencies a member here can pay in to that community: [{here, there, unitsHere, unitsThere}]. */
export function crossings(alliance) {
  const a = alliance.side === "A";
  return (alliance.pairs || []).map((p) => ({
    here: a ? p.currencyA : p.currencyB, there: a ? p.currencyB : p.currencyA,
    unitsHere: BigInt(a ? p.unitsA : p.unitsB), unitsThere: BigInt(a ? p.unitsB : p.unitsA),
  }));
}

/** What the payee receives for `amount` paid here: amount × there / here, rounded DOWN, as
 * both nodes check it (ledger.core.federation.delivered_for). Exact in BigInt. */
export function deliveredFor(amount, crossing) {
  return safe((BigInt(amount) * crossing.unitsThere) / crossing.unitsHere);
}

function safe(n) {
  if (n > BigInt(Number.MAX_SAFE_INTEGER)) throw Object.assign(new Error("amount too large"), { code: "amount_too_large" });
  return Number(n);
}

/** The least amount here that delivers at least `wanted` there (a link asks for an amount there). */
export function amountFor(wanted, crossing) {
  const w = BigInt(wanted);
  return safe((w * crossing.unitsHere + crossing.unitsThere - 1n) / crossing.unitsThere);
}

/** The EIP-712 document of a RemoteTransfer, under THIS community's domain (the payer's). */
export function remoteDocument(domain, eip712Domain, message) {
  return { types: { EIP712Domain: eip712Domain, RemoteTransfer: REMOTE_TRANSFER_FIELDS }, domain,
    primaryType: "RemoteTransfer", message };
}
