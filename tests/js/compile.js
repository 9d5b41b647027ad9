#!/usr/bin/env node
// Standalone solc-js compile of the exported contracts, without Hardhat.
// Same compiler (npm `solc`, pinned), same settings (contracts/solc-settings.js) and the same
// source unit names as Hardhat, so the bytecode (incl. the metadata hash) must be identical
// to contracts/build/*.json. Used by tests/test_contracts.py.
//
// usage: node tests/js/compile.js [source.sol ...]   (default: the EXPORTED sources)
// prints {"solcVersion", "contracts": {Name: {abi, bytecode, deployedBytecode, sourceName}}}
"use strict";
const fs = require("node:fs");
const path = require("node:path");

const ROOT = path.resolve(__dirname, "..", "..");
const solc = require(require.resolve("solc", { paths: [ROOT] }));
const { SOLC_VERSION, SOLC_SETTINGS, EXPORTED } = require(path.join(ROOT, "contracts", "solc-settings.js"));

if (!solc.version().startsWith(SOLC_VERSION + "+")) {
  throw new Error(`npm solc is ${solc.version()}, expected ${SOLC_VERSION}`);
}

function resolveSource(name) {
  // Hardhat source names: project files relative to the root, libraries as npm paths.
  const local = path.join(ROOT, name);
  if (!name.startsWith("@") && fs.existsSync(local)) return local;
  return require.resolve(name, { paths: [ROOT] });
}

const sourceNames = process.argv.slice(2).length ? process.argv.slice(2) : Object.keys(EXPORTED);
const input = {
  language: "Solidity",
  sources: Object.fromEntries(
    sourceNames.map((n) => [n, { content: fs.readFileSync(resolveSource(n), "utf8") }]),
  ),
  settings: {
    ...SOLC_SETTINGS,
    outputSelection: { "*": { "*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"] } },
  },
};

function findImports(name) {
  try {
    return { contents: fs.readFileSync(resolveSource(name), "utf8") };
  } catch (e) {
    return { error: `not found: ${name}` };
  }
}

const output = JSON.parse(solc.compile(JSON.stringify(input), { import: findImports }));
const errors = (output.errors || []).filter((e) => e.severity === "error");
if (errors.length) {
  process.stderr.write(errors.map((e) => e.formattedMessage).join("\n") + "\n");
  process.exit(1);
}
const contracts = {};
for (const n of sourceNames) {
  for (const [name, c] of Object.entries(output.contracts[n] || {})) {
    contracts[name] = {
      sourceName: n,
      abi: c.abi,
      bytecode: "0x" + c.evm.bytecode.object,
      deployedBytecode: "0x" + c.evm.deployedBytecode.object,
    };
  }
}
process.stdout.write(JSON.stringify({ solcVersion: solc.version(), contracts }) + "\n");
