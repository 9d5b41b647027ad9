#!/usr/bin/env node
// Independent signer for tests/test_ethers_signature.py: ethers v6 Wallet.signTypedData.
// stdin: one request, or a JSON list of requests (one node process signs a whole batch):
//   {"privateKey": "0x..", "domain": {...}, "types": {...without EIP712Domain...},
//    "primaryType": "Transfer", "message": {...}}
// uint256/uint64 values (and chainId) must be decimal strings: a JSON number above 2^53
// would already have lost precision in JSON.parse, so any unsafe number is refused here.
// stdout: {"signature", "address", "digest", "domainSeparator", "structHash", "encodedType",
//          "encodedDomainType", "primaryType"} per request (a list for a list).
"use strict";
const path = require("node:path");
const ROOT = path.resolve(__dirname, "..", "..");
const { Wallet, TypedDataEncoder, verifyTypedData } = require(require.resolve("ethers", { paths: [ROOT] }));

function refuseUnsafeNumbers(value, where) {
  if (typeof value === "number" && !Number.isSafeInteger(value)) {
    throw new Error(`${where} is the JSON number ${value}: not a safe integer, send it as a decimal string`);
  }
  if (value && typeof value === "object") {
    for (const [k, v] of Object.entries(value)) refuseUnsafeNumbers(v, `${where}.${k}`);
  }
}

async function sign(req, i) {
  const { privateKey, domain, types, primaryType, message } = req;
  if (types.EIP712Domain) throw new Error(`request ${i}: pass types without EIP712Domain (ethers derives it from the domain)`);
  refuseUnsafeNumbers(domain, `request ${i} domain`);
  refuseUnsafeNumbers(message, `request ${i} message`);
  const encoder = TypedDataEncoder.from(types);
  if (encoder.primaryType !== primaryType) {
    throw new Error(`request ${i}: ethers infers primary type ${encoder.primaryType}, asked for ${primaryType}`);
  }
  const wallet = new Wallet(privateKey);
  const signature = await wallet.signTypedData(domain, types, message);
  // ethers' own check that its signature recovers to the signer
  if (verifyTypedData(domain, types, message, signature) !== wallet.address) {
    throw new Error(`request ${i}: ethers' signature does not verify to ${wallet.address}`);
  }
  const domainTypes = { EIP712Domain: TypedDataEncoder.getPayload(domain, types, message).types.EIP712Domain };
  return {
    signature,
    address: wallet.address,
    digest: TypedDataEncoder.hash(domain, types, message),
    domainSeparator: TypedDataEncoder.hashDomain(domain),
    structHash: encoder.hash(message),
    encodedType: encoder.encodeType(primaryType),
    encodedDomainType: TypedDataEncoder.from(domainTypes).encodeType("EIP712Domain"),
    primaryType: encoder.primaryType,
  };
}

let input = "";
process.stdin.setEncoding("utf8");
process.stdin.on("data", (c) => (input += c));
process.stdin.on("end", async () => {
  try {
    const parsed = JSON.parse(input);
    const out = Array.isArray(parsed) ? await Promise.all(parsed.map(sign)) : await sign(parsed, 0);
    process.stdout.write(JSON.stringify(out));
  } catch (err) {
    process.stderr.write(`sign_ethers.js: ${err && err.stack ? err.stack : err}\n`);
    process.exit(1);
  }
});
