// Keys stay on the device. A local key lives only as an encrypted V3 keystore in
// localStorage and, once unlocked, in memory; an injected wallet (window.ethereum) keeps its
// own keys. Either way the server only ever receives signatures.
import * as C from "./crypto.js";
import { decryptKeystore, encryptKeystore, parseKeystore } from "./keystore.js";
import { api, setToken } from "./api.js";
import { checkChallenge } from "./links.js";
import { remoteDocument } from "./remote.js";

const KEYSTORE = "ayni.keystore";
let signer = null;   // {kind, address, signMessage(text), signTypedData(doc)}
let community = null;

export const current = () => signer;
export const storedKeystore = () => localStorage.getItem(KEYSTORE);
export const storedAddress = () => {
  const ks = storedKeystore();
  try { return ks ? C.checksum("0x" + parseKeystore(ks).address.replace(/^0x/, "")) : null; } catch { return null; }
};
export const hasInjected = () => typeof window !== "undefined" && Boolean(window.ethereum);

function localSigner(key) {
  return {
    kind: "local",
    address: C.addressOfKey(key),
    signMessage: async (text) => C.signDigest(C.personalSignDigest(text), key),
    signTypedData: async (doc) => C.signDigest(C.typedDataDigest(doc), key),
  };
}

export async function createKey(passphrase, onProgress) {
  const key = C.newPrivateKey();
  const ks = await encryptKeystore(key, passphrase, undefined, onProgress);
  localStorage.setItem(KEYSTORE, JSON.stringify(ks));
  signer = localSigner(key);
  return signer.address;
}

export async function unlock(passphrase, onProgress) {
  const key = await decryptKeystore(storedKeystore(), passphrase, onProgress);
  signer = localSigner(key);
  return signer.address;
}

/** Import a keystore file (checked by decrypting it) and keep it as this device's key. */
export async function importKeystore(text, passphrase, onProgress) {
  const key = await decryptKeystore(text, passphrase, onProgress);
  localStorage.setItem(KEYSTORE, JSON.stringify(parseKeystore(text)));
  signer = localSigner(key);
  return signer.address;
}

export async function useInjected() {
  const eth = window.ethereum;
  const [account] = await eth.request({ method: "eth_requestAccounts" });
  const address = C.checksum(account);
  signer = {
    kind: "injected",
    address,
    signMessage: (text) => eth.request({ method: "personal_sign", params: [C.hex(new TextEncoder().encode(text)), address] }),
    signTypedData: (doc) => eth.request({ method: "eth_signTypedData_v4", params: [address, JSON.stringify(doc)] }),
  };
  return address;
}

export function forgetKey() {
  localStorage.removeItem(KEYSTORE);
  signOut();
}

/** Forget the unlocked key and the session (the encrypted keystore stays): the idle lock. */
export const lock = () => signOut();
export const isLocal = () => Boolean(signer && signer.kind === "local");

export function signOut() {
  signer = null;
  setToken(null);
}

export async function getCommunity() {
  if (!community) community = await api("/v1/community");
  return community;
}

/** EIP-4361 sign-in: the server's challenge text is signed as is (personal_sign), once it
 * is checked to be for this site, this key and this community's chain. */
export async function signIn() {
  const com = await getCommunity();
  const ch = await api("/v1/auth/challenge", { method: "POST", body: { address: signer.address } });
  checkChallenge(ch.message, { host: location.host, origin: location.origin, address: signer.address, chainId: com.domain.chainId });
  const signature = await signer.signMessage(ch.message);
  const session = await api("/v1/auth/token", { method: "POST", body: { message: ch.message, signature } });
  setToken(session.token);
  signer.role = session.role;
  return session;
}

/** The exact EIP-712 document for a Transfer (what the confirmation screen shows). */
export async function transferDocument({ payee, currency, amount, memo, requestId }) {
  const com = await getCommunity();
  const salt = memo ? C.randomBytes(32) : null;
  const message = {
    payer: signer.address, payee, currency, amount, nonce: C.newNonce(),
    validUntil: String(Math.floor(Date.now() / 1000) + 3600),
    memoHash: C.memoHash(memo, salt), requestId: requestId || C.ZERO32,
  };
  const types = { EIP712Domain: com.types.EIP712Domain, Transfer: com.types.Transfer };
  return { doc: { types, domain: com.domain, primaryType: "Transfer", message }, memo: memo || null,
    memoSalt: salt ? C.hex(salt) : null };
}

/** Sign in the browser and post (POST /v1/transfers). Returns {seq, digest, ...}. */
export async function signAndPost({ doc, memo, memoSalt }) {
  const signature = await signer.signTypedData(doc);
  const body = { transfer: doc.message, signature };
  if (memo) Object.assign(body, { memo, memoSalt });
  return api("/v1/transfers", { method: "POST", body });
}

/** The exact EIP-712 document for a RemoteTransfer to a member of an allied community: both
 * amounts (here and there), under this community's domain (docs/federation.md). */
export async function remoteTransferDocument({ payeeCommunity, payee, currency, amount, payeeCurrency, delivered, memo }) {
  const com = await getCommunity();
  const salt = memo ? C.randomBytes(32) : null;
  const message = {
    payer: signer.address, payeeCommunity, payee, currency, amount, payeeCurrency, delivered, nonce: C.newNonce(),
    validUntil: String(Math.floor(Date.now() / 1000) + 3600), memoHash: C.memoHash(memo, salt),
  };
  const doc = remoteDocument(com.domain, com.types.EIP712Domain, message);
  return { doc, paymentId: C.hex(C.typedDataDigest(doc)), memo: memo || null, memoSalt: salt ? C.hex(salt) : null };
}

/** Sign in the browser and post (POST /v1/remote-transfers): {paymentId, state, ...}; the
 * node answers once committed (201) or, after a short wait, still prepared (202). */
export async function signAndPostRemote({ doc, memo, memoSalt }) {
  const signature = await signer.signTypedData(doc);
  const body = { message: doc.message, signature };
  if (memo) Object.assign(body, { memo, memoSalt });
  return api("/v1/remote-transfers", { method: "POST", body });
}
