// Web3 Secret Storage (keystore V3): the same file `ayni-wallet` and eth-account write, so a
// member can move a key between the app and the wallet. scrypt or pbkdf2-hmac-sha256,
// aes-128-ctr, mac = keccak256(dk[16:32] ‖ ciphertext).
import { scryptAsync } from "@noble/hashes/scrypt.js";
import { pbkdf2Async } from "@noble/hashes/pbkdf2.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { keccak_256 } from "@noble/hashes/sha3.js";
import { ctr } from "@noble/ciphers/aes.js";
import { bytesToHex, hexToBytes, concatBytes, randomBytes, utf8ToBytes } from "@noble/hashes/utils.js";
import { addressOfKey } from "./crypto.js";

// scrypt N=2^16, r=8: 64 MiB and about a second on a cheap phone. Imported files may use
// heavier settings (eth-account's default is N=2^18: 256 MiB), which we still open.
export const DEFAULT_SCRYPT = { n: 1 << 16, r: 8, p: 1 };
const MAX_MEMORY = 300 * 1024 * 1024;

const h = (s) => hexToBytes(String(s).replace(/^0x/, ""));

export class KeystoreError extends Error {
  constructor(code, message) { super(message); this.code = code; }
}

async function deriveKey(crypto, password, onProgress) {
  const p = crypto.kdfparams || {};
  // Raw UTF-8, no normalisation: what eth-account (ayni-wallet) does for V3 files.
  const pw = utf8ToBytes(password);
  if (crypto.kdf === "scrypt") {
    const mem = 128 * p.r * (p.n + p.p + 1);
    if (mem > MAX_MEMORY) throw new KeystoreError("keystore_too_heavy", "scrypt settings need too much memory");
    return scryptAsync(pw, h(p.salt), { N: p.n, r: p.r, p: p.p, dkLen: p.dklen, maxmem: MAX_MEMORY + 4096, onProgress });
  }
  if (crypto.kdf === "pbkdf2") {
    if (p.prf !== "hmac-sha256") throw new KeystoreError("keystore_unsupported", `unsupported prf ${p.prf}`);
    return pbkdf2Async(sha256, pw, h(p.salt), { c: p.c, dkLen: p.dklen });
  }
  throw new KeystoreError("keystore_unsupported", `unsupported kdf ${crypto.kdf}`);
}

/** Parse and check the shape of a keystore file's text; throws KeystoreError("keystore_invalid"). */
export function parseKeystore(text) {
  let doc;
  try { doc = typeof text === "string" ? JSON.parse(text) : text; } catch {
    throw new KeystoreError("keystore_invalid", "not JSON");
  }
  const c = doc && (doc.crypto || doc.Crypto);
  if (!doc || doc.version !== 3 || !c || !c.ciphertext || !c.mac || !c.cipherparams) {
    throw new KeystoreError("keystore_invalid", "not a version 3 keystore");
  }
  if (c.cipher !== "aes-128-ctr") throw new KeystoreError("keystore_unsupported", `unsupported cipher ${c.cipher}`);
  return { ...doc, crypto: c };
}

/** The private key (32 bytes) in a keystore; KeystoreError("wrong_passphrase") if the MAC fails. */
export async function decryptKeystore(text, password, onProgress) {
  const doc = parseKeystore(text);
  const c = doc.crypto;
  const dk = await deriveKey(c, password, onProgress);
  const ciphertext = h(c.ciphertext);
  const mac = keccak_256(concatBytes(dk.slice(16, 32), ciphertext));
  if (bytesToHex(mac) !== String(c.mac).replace(/^0x/, "").toLowerCase()) {
    throw new KeystoreError("wrong_passphrase", "wrong passphrase");
  }
  const key = ctr(dk.slice(0, 16), h(c.cipherparams.iv)).decrypt(ciphertext);
  if (doc.address && addressOfKey(key).toLowerCase().slice(2) !== String(doc.address).toLowerCase().replace(/^0x/, "")) {
    throw new KeystoreError("keystore_invalid", "the key does not match the keystore's address");
  }
  return key;
}

function uuid4() {
  const b = randomBytes(16);
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const x = bytesToHex(b);
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
}

export async function encryptKeystore(privateKey, password, { n, r, p } = DEFAULT_SCRYPT, onProgress) {
  const salt = randomBytes(32);
  const iv = randomBytes(16);
  const kdfparams = { dklen: 32, n, r, p, salt: bytesToHex(salt) };
  const dk = await deriveKey({ kdf: "scrypt", kdfparams }, password, onProgress);
  const ciphertext = ctr(dk.slice(0, 16), iv).encrypt(privateKey);
  const mac = keccak_256(concatBytes(dk.slice(16, 32), ciphertext));
  return {
    address: addressOfKey(privateKey).slice(2).toLowerCase(),
    crypto: { cipher: "aes-128-ctr", cipherparams: { iv: bytesToHex(iv) }, ciphertext: bytesToHex(ciphertext),
      kdf: "scrypt", kdfparams, mac: bytesToHex(mac) },
    id: uuid4(),
    version: 3,
  };
}
