// Unit tests of the web app's signing code against the Python implementation's vectors
// (docs/typed-data.md). Run: node --test tests/web/signing.test.mjs (pytest runs it too).
import { test } from "node:test";
import assert from "node:assert/strict";
import * as C from "../../web/src/crypto.js";
import { parseAmount, formatAmount } from "../../web/src/amounts.js";
import { decryptKeystore, encryptKeystore, KeystoreError } from "../../web/src/keystore.js";

const enc = new TextEncoder();
const types = {
  EIP712Domain: [{ name: "name", type: "string" }, { name: "version", type: "string" },
    { name: "chainId", type: "uint256" }, { name: "salt", type: "bytes32" }],
  Transfer: "payer:address payee:address currency:string amount:uint256 nonce:uint256 validUntil:uint64 memoHash:bytes32 requestId:bytes32"
    .split(" ").map((f) => ({ name: f.split(":")[0], type: f.split(":")[1] })),
};
const payerKey = C.keccak(enc.encode("ayni payer"));
const domain = { name: "Ayni", version: "1", chainId: "31337", salt: C.keccakHex(enc.encode("ayni test community")) };
const salt = new Uint8Array(32).fill(0x11);
const message = {
  payer: "0x0c6C78f7274A93b337Fe4177034D8aDCe9Dd1807", payee: "0xF2b142AC2987e5a86AfFC2b952628FcdC3d0AbfA",
  currency: "HOUR", amount: 90, nonce: "1", validUntil: "1893456000",
  memoHash: C.memoHash("home visit", salt), requestId: C.ZERO32,
};

test("addresses of the vector keys", () => {
  assert.equal(C.addressOfKey(payerKey), message.payer);
  assert.equal(C.addressOfKey(C.keccak(enc.encode("ayni payee"))), message.payee);
  assert.equal(domain.salt, "0x58921392553b83bea91ad1fb4f73f5bb5cc7bea6d82f0a962a8c1015a5d2489a");
});

test("Ayni Transfer vector: memo hash, type hash, separator, struct hash, digest, signature", () => {
  assert.equal(message.memoHash, "0x40fd4a038facefe55d1528284dea3d51fcc23c1af0865eea3a26e18d9883b55a");
  assert.equal(C.keccakHex(enc.encode(C.encodeType(types, "Transfer"))),
    "0x5a8f02de00682ccc5ee122c9c4b71f18aabf638ee20b81855d7b048a3b2c18e0");
  assert.equal(C.hex(C.domainSeparator(types, domain)), "0x08429d71279af0be6aa0e2d978d36f4c6f54d0594affc458847018d56707e491");
  assert.equal(C.hex(C.hashStruct(types, "Transfer", message)), "0x9222fa545781f8a462bee9009c49172ce2479ddd42c7bf34f025aac7a058e8ff");
  const digest = C.typedDataDigest({ types, domain, primaryType: "Transfer", message });
  assert.equal(C.hex(digest), "0xab768ad8108d380994d730eaaa578cba0135a411ba907b83d7dc1e3abc2476a7");
  const sig = C.signDigest(digest, payerKey);
  assert.equal(sig, "0x54f94c32d6916d06a3a1d669c3cb41d78d2917fd3e2d55e87becedbc6d027268471d2d07080d35bb362e07c3d8a0506041d6e09b0a8c65b9dc56152d6e20b4191b");
  assert.equal(C.recoverAddress(digest, sig), message.payer);
});

test("EIP-712 Ether Mail vector (the EIP's own example)", () => {
  const mail = {
    EIP712Domain: [{ name: "name", type: "string" }, { name: "version", type: "string" },
      { name: "chainId", type: "uint256" }, { name: "verifyingContract", type: "address" }],
    Person: [{ name: "name", type: "string" }, { name: "wallet", type: "address" }],
    Mail: [{ name: "from", type: "Person" }, { name: "to", type: "Person" }, { name: "contents", type: "string" }],
  };
  const d = { name: "Ether Mail", version: "1", chainId: 1, verifyingContract: "0xCcCCccccCCCCcCCCCCCcCcCccCcCCCcCcccccccC" };
  // The app only signs flat Ayni types; the separator is checked here (nested structs are out of scope).
  assert.equal(C.hex(C.domainSeparator(mail, d)), "0xf2cee375fa42b42143804025fc449deafd50cc031ca257e0b194a650a912090f");
});

test("a changed field changes the digest; an unsafe JSON number is refused", () => {
  const base = C.hex(C.typedDataDigest({ types, domain, primaryType: "Transfer", message }));
  const other = C.hex(C.typedDataDigest({ types, domain, primaryType: "Transfer", message: { ...message, amount: 91 } }));
  assert.notEqual(base, other);
  assert.throws(() => C.hashStruct(types, "Transfer", { ...message, nonce: 2 ** 60 }), /safe integer/);
  assert.throws(() => C.hashStruct(types, "Transfer", { ...message, memoHash: "0x12" }), /64 hex/);
});

test("personal_sign (EIP-191) digest and recovery", () => {
  const msg = "127.0.0.1:8000 wants you to sign in with your Ethereum account:\nx";
  const d = C.personalSignDigest(msg);
  assert.equal(C.recoverAddress(d, C.signDigest(d, payerKey)), message.payer);
  // keccak256("\x19Ethereum Signed Message:\n5hello")
  assert.equal(C.hex(C.personalSignDigest("hello")), "0x50b2c43fd39106bafbba0da34fc430e1f91e3c96ea2acee2bc34119f92b37750");
});

test("address parsing: checksum enforced on mixed case", () => {
  assert.equal(C.parseAddress(message.payer.toLowerCase()), message.payer);
  assert.equal(C.parseAddress("ethereum:" + message.payer), message.payer);
  assert.equal(C.parseAddress(message.payer.replace("c6C", "c6c")), null);
  assert.equal(C.parseAddress("0x1234"), null);
});

test("amounts parse and format like ledger/core/amounts.py", () => {
  const HOUR = { code: "HOUR", style: "time", decimals: 0 }, CRED = { code: "CRED", style: "decimal", decimals: 2 };
  assert.equal(parseAmount(HOUR, "1.5"), 90);
  assert.equal(parseAmount(HOUR, "1h30m"), 90);
  assert.equal(parseAmount(HOUR, "45m"), 45);
  assert.equal(parseAmount(CRED, "12.5"), 1250);
  assert.equal(parseAmount(CRED, "12,50"), 1250);
  assert.throws(() => parseAmount(HOUR, "0.01"), { code: "amount_not_minutes" });
  assert.throws(() => parseAmount(CRED, "1.234"), { code: "amount_too_precise" });
  assert.throws(() => parseAmount(CRED, "-1"), { code: "amount_negative" });
  assert.throws(() => parseAmount(CRED, "0"), { code: "amount_not_positive" });
  assert.equal(formatAmount(HOUR, -90), "-1h30m");
  assert.equal(formatAmount(HOUR, 120), "2h");
  assert.equal(formatAmount(CRED, 1250), "12.50");
});

test("keystore round trip; wrong passphrase is refused", async () => {
  const ks = await encryptKeystore(payerKey, "correct horse", { n: 1 << 10, r: 8, p: 1 });
  assert.equal(ks.address, message.payer.slice(2).toLowerCase());
  assert.deepEqual(await decryptKeystore(JSON.stringify(ks), "correct horse"), payerKey);
  await assert.rejects(decryptKeystore(ks, "wrong"), (e) => e instanceof KeystoreError && e.code === "wrong_passphrase");
});
