// The web app's keystore code as a filter for tests/test_web.py (interop with eth-account).
// stdin: {"op": "decrypt", "keystore": {...}, "password": "..."} -> {"privateKey": "0x.."}
//        {"op": "encrypt", "privateKey": "0x..", "password": "...", "n": 1024} -> keystore JSON
import { decryptKeystore, encryptKeystore } from "../../web/src/keystore.js";
import { hex, unhex } from "../../web/src/crypto.js";

let input = "";
process.stdin.setEncoding("utf8");
process.stdin.on("data", (c) => (input += c));
process.stdin.on("end", async () => {
  try {
    const req = JSON.parse(input);
    const out = req.op === "decrypt"
      ? { privateKey: hex(await decryptKeystore(JSON.stringify(req.keystore), req.password)) }
      : await encryptKeystore(unhex(req.privateKey), req.password, { n: req.n, r: 8, p: 1 });
    process.stdout.write(JSON.stringify(out));
  } catch (err) {
    process.stderr.write(`keystore_cli: ${err.code || ""} ${err.message}\n`);
    process.exit(1);
  }
});
