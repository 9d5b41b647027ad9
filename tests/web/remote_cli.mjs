// The web app's RemoteTransfer signing and rate for tests/test_web.py (parity with
// ledger/core/federation.py). stdin: {"domain", "eip712Domain", "transfers": [message...],
// "key", "alliance", "amounts": [...]} -> {"typeHash", "structHashes", "digests", "signatures",
// "delivered": [[currency here, amount, delivered], ...], "amountFor": [...]}
import * as C from "../../web/src/crypto.js";
import { crossings, deliveredFor, amountFor, remoteDocument } from "../../web/src/remote.js";

let input = "";
process.stdin.setEncoding("utf8");
process.stdin.on("data", (c) => (input += c));
process.stdin.on("end", () => {
  const { domain, eip712Domain, transfers, key, alliance, amounts } = JSON.parse(input);
  const docs = transfers.map((m) => remoteDocument(domain, eip712Domain, m));
  const typeHash = C.keccakHex(new TextEncoder().encode(C.encodeType(docs[0].types, "RemoteTransfer")));
  const structHashes = docs.map((d) => C.hex(C.hashStruct(d.types, "RemoteTransfer", d.message)));
  const digests = docs.map((d) => C.hex(C.typedDataDigest(d)));
  const signatures = docs.map((d) => C.signDigest(C.typedDataDigest(d), C.unhex(key)));
  const delivered = [], back = [];
  for (const x of crossings(alliance)) {
    for (const a of amounts) {
      delivered.push([x.here, a, deliveredFor(a, x)]);
      back.push([x.here, a, amountFor(a, x)]);
    }
  }
  process.stdout.write(JSON.stringify({ typeHash, structHashes, digests, signatures, delivered, amountFor: back }));
});
