// Hardhat 2 configuration for Ayni's contracts. CommonJS on purpose (Hardhat 2).
//
// Offline build: no compiler is ever downloaded. The solc-js build that ships in the
// pinned npm package `solc` (node_modules/solc/soljson.js) is handed to Hardhat by
// overriding the TASK_COMPILE_SOLIDITY_GET_SOLC_BUILD subtask. SOLC_VERSION must equal
// the npm package's version and the `pragma solidity` of our own sources.
const path = require("node:path");
const { subtask } = require("hardhat/config");
const { TASK_COMPILE_SOLIDITY_GET_SOLC_BUILD } = require("hardhat/builtin-tasks/task-names");
require("@nomicfoundation/hardhat-ethers");

const { SOLC_VERSION, SOLC_SETTINGS } = require("./contracts/solc-settings.js");

subtask(TASK_COMPILE_SOLIDITY_GET_SOLC_BUILD, async ({ solcVersion }) => {
  const solcPkg = require("solc/package.json");
  if (solcVersion !== SOLC_VERSION || solcPkg.version !== SOLC_VERSION) {
    throw new Error(
      `offline build needs solc ${SOLC_VERSION}; asked for ${solcVersion}, npm solc is ${solcPkg.version}`,
    );
  }
  const solcjs = require("solc");
  return {
    compilerPath: require.resolve("solc/soljson.js"),
    isSolcJs: true,
    version: SOLC_VERSION,
    longVersion: solcjs.version().replace(/\.Emscripten\.clang$/, ""),
  };
});

/** @type import('hardhat/config').HardhatUserConfig */
module.exports = {
  solidity: {
    version: SOLC_VERSION,
    settings: SOLC_SETTINGS,
  },
  paths: {
    root: __dirname,
    sources: path.join(__dirname, "contracts"),
    tests: path.join(__dirname, "contracts", "test"),
    artifacts: path.join(__dirname, "artifacts"),
    cache: path.join(__dirname, "cache"),
  },
  networks: {
    hardhat: {
      // Same fork rules as the compiler target; py-evm (eth-tester) has no Osaka opcodes.
      hardfork: "cancun",
    },
  },
  mocha: {
    timeout: 60000,
  },
};
