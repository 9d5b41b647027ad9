#!/usr/bin/env node
// Export the Hardhat build of the contracts Python uses to contracts/build/<Name>.json
// (committed: ledger/chain loads ABI + bytecode from there; no compiler needed at runtime).
// Run via `npm run export-artifacts` (compiles first). tests/test_contracts.py checks that
// these files equal a fresh, Hardhat-independent solc-js compile (tests/js/compile.js).
"use strict";
const fs = require("node:fs");
const path = require("node:path");

const ROOT = path.resolve(__dirname, "..", "..");
const { SOLC_VERSION, SOLC_SETTINGS, EXPORTED } = require(path.join(ROOT, "contracts", "solc-settings.js"));
const ARTIFACTS = path.join(ROOT, "artifacts");
const OUT = path.join(ROOT, "contracts", "build");

function readJson(p) {
  return JSON.parse(fs.readFileSync(p, "utf8"));
}

fs.mkdirSync(OUT, { recursive: true });
for (const [sourceName, names] of Object.entries(EXPORTED)) {
  for (const name of names) {
    const artifactPath = path.join(ARTIFACTS, sourceName, `${name}.json`);
    const dbgPath = path.join(ARTIFACTS, sourceName, `${name}.dbg.json`);
    if (!fs.existsSync(artifactPath)) {
      throw new Error(`missing ${artifactPath}: run \`npx hardhat compile\` first`);
    }
    const art = readJson(artifactPath);
    const buildInfo = readJson(path.resolve(path.dirname(dbgPath), readJson(dbgPath).buildInfo));
    if (buildInfo.solcVersion !== SOLC_VERSION) {
      throw new Error(`${name} was built with solc ${buildInfo.solcVersion}, expected ${SOLC_VERSION}`);
    }
    const { outputSelection, ...settings } = buildInfo.input.settings;
    for (const [k, v] of Object.entries(SOLC_SETTINGS)) {
      if (JSON.stringify(settings[k]) !== JSON.stringify(v)) {
        throw new Error(`${name}: build setting ${k} differs from contracts/solc-settings.js`);
      }
    }
    const out = {
      contractName: name,
      sourceName,
      compiler: { name: "solc", version: buildInfo.solcVersion, longVersion: buildInfo.solcLongVersion },
      settings,
      abi: art.abi,
      bytecode: art.bytecode,
      deployedBytecode: art.deployedBytecode,
    };
    fs.writeFileSync(path.join(OUT, `${name}.json`), JSON.stringify(out, null, 2) + "\n");
    console.log(`wrote contracts/build/${name}.json (${(art.deployedBytecode.length - 2) / 2} bytes deployed)`);
  }
}
