// Signing for the member app: keccak, secp256k1, EIP-712 (the atomic types Ayni uses),
// EIP-191 personal_sign, EIP-55 addresses. Pure functions: no DOM, so node --test runs them
// against the Python implementation's vectors (docs/typed-data.md).
import { secp256k1 } from "@noble/curves/secp256k1.js";
import { keccak_256 } from "@noble/hashes/sha3.js";
import { bytesToHex, hexToBytes, utf8ToBytes, concatBytes, randomBytes } from "@noble/hashes/utils.js";

export { bytesToHex, hexToBytes, randomBytes };
export const ZERO32 = "0x" + "00".repeat(32);

export const keccak = (bytes) => keccak_256(bytes);
export const hex = (bytes) => "0x" + bytesToHex(bytes);
export const unhex = (s) => hexToBytes(s.startsWith("0x") ? s.slice(2) : s);
export const keccakHex = (bytes) => hex(keccak_256(bytes));

export function checksum(address) {
  if (!/^0x[0-9a-fA-F]{40}$/.test(address)) throw new Error("not an address: " + address);
  const lower = address.slice(2).toLowerCase();
  const h = bytesToHex(keccak_256(utf8ToBytes(lower)));
  let out = "0x";
  for (let i = 0; i < 40; i++) out += parseInt(h[i], 16) >= 8 ? lower[i].toUpperCase() : lower[i];
  return out;
}

/** A pasted or scanned address, or null. Mixed case must carry a valid EIP-55 checksum
 * (a typo then cannot send money to a stranger); all-lower or all-upper is accepted. */
export function parseAddress(text) {
  const s = String(text || "").trim().replace(/^ethereum:/i, "").split(/[@/?]/)[0];
  if (!/^0x[0-9a-fA-F]{40}$/.test(s)) return null;
  const body = s.slice(2);
  if (body !== body.toLowerCase() && body !== body.toUpperCase() && checksum(s) !== s) return null;
  return checksum(s);
}

export function addressOfKey(privateKey) {
  const pub = secp256k1.getPublicKey(privateKey, false); // 65 bytes, 0x04 ‖ x ‖ y
  return checksum(hex(keccak_256(pub.slice(1)).slice(12)));
}

export const newPrivateKey = () => secp256k1.utils.randomSecretKey();

/** 65-byte r ‖ s ‖ v (v = 27/28) over a 32-byte digest; noble signs low-s (EIP-2). */
export function signDigest(digest, privateKey) {
  const rec = secp256k1.sign(digest, privateKey, { prehash: false, format: "recovered" });
  const out = new Uint8Array(65);
  out.set(rec.slice(1), 0);
  out[64] = 27 + rec[0];
  return hex(out);
}

export function recoverAddress(digest, signature) {
  const sig = unhex(signature);
  const v = sig[64] >= 27 ? sig[64] - 27 : sig[64];
  const rec = concatBytes(Uint8Array.of(v), sig.slice(0, 64));
  const pub = secp256k1.recoverPublicKey(rec, digest, { prehash: false });
  const full = secp256k1.Point.fromBytes(pub).toBytes(false);
  return checksum(hex(keccak_256(full.slice(1)).slice(12)));
}

export function personalSignDigest(message) {
  const data = utf8ToBytes(message);
  return keccak_256(concatBytes(utf8ToBytes(`\x19Ethereum Signed Message:\n${data.length}`), data));
}

/** keccak256(salt ‖ utf8(memo)); no memo commits to zero (ledger/core/typed_data.py). */
export function memoHash(memo, salt) {
  if (!memo) return ZERO32;
  if (!salt || salt.length !== 32) throw new Error("a memo needs a 32-byte salt");
  return hex(keccak_256(concatBytes(salt, utf8ToBytes(memo))));
}

// -- EIP-712 --------------------------------------------------------------------------
export function encodeType(types, primary) {
  return `${primary}(${types[primary].map((f) => `${f.type} ${f.name}`).join(",")})`;
}

function uint(value, bits, name) {
  const n = typeof value === "bigint" ? value : BigInt(typeof value === "number" ? checkSafe(value, name) : String(value));
  if (n < 0n || n >= 1n << BigInt(bits)) throw new Error(`${name} is out of range for uint${bits}`);
  return hexToBytes(n.toString(16).padStart(64, "0"));
}

function checkSafe(n, name) {
  if (!Number.isSafeInteger(n)) throw new Error(`${name} is not a safe integer: send it as a decimal string`);
  return n;
}

function encodeValue(type, value, name) {
  if (type === "string") return keccak_256(utf8ToBytes(value));
  if (type === "bytes") return keccak_256(unhex(value));
  if (type === "address") return concatBytes(new Uint8Array(12), unhex(checksum(value)));
  if (type === "bool") return uint(value ? 1 : 0, 8, name);
  if (type === "bytes32") {
    if (!/^0x[0-9a-fA-F]{64}$/.test(value)) throw new Error(`${name} must be 0x and 64 hex digits`);
    return unhex(value);
  }
  const m = /^uint(\d+)$/.exec(type);
  if (m) return uint(value, Number(m[1]), name);
  throw new Error(`type ${type} is not used by Ayni`);
}

export function hashStruct(types, primary, message) {
  const typeHash = keccak_256(utf8ToBytes(encodeType(types, primary)));
  const fields = types[primary].map((f) => {
    if (!(f.name in message)) throw new Error(`${primary}.${f.name} is missing`);
    return encodeValue(f.type, message[f.name], `${primary}.${f.name}`);
  });
  return keccak_256(concatBytes(typeHash, ...fields));
}

export function domainSeparator(types, domain) {
  return hashStruct(types, "EIP712Domain", domain);
}

/** digest = keccak256(0x19 0x01 ‖ domainSeparator ‖ hashStruct(message)). */
export function typedDataDigest({ types, domain, primaryType, message }) {
  return keccak_256(concatBytes(Uint8Array.of(0x19, 0x01), domainSeparator(types, domain),
    hashStruct(types, primaryType, message)));
}

/** A fresh 128-bit random nonce as a decimal string (unordered nonces, docs/typed-data.md). */
export function newNonce() {
  return BigInt("0x" + bytesToHex(randomBytes(16))).toString(10);
}
