// Single source of truth for the compiler version and settings, shared by
// hardhat.config.js and the standalone solc-js compile (tests/js/compile.js) so both
// produce byte-identical bytecode (the metadata hash covers version, settings and sources).
const SOLC_VERSION = "0.8.30";

const SOLC_SETTINGS = {
  // py-evm (eth-tester) has no Osaka opcodes; cancun is supported by every chain we target.
  evmVersion: "cancun",
  optimizer: { enabled: true, runs: 10000 },
  metadata: { bytecodeHash: "ipfs" },
};

// Contracts exported to contracts/build/<Name>.json for Python (source name -> contract names).
const EXPORTED = {
  "contracts/Anchor.sol": ["Anchor"],
  "contracts/harness/MerkleProofHarness.sol": ["MerkleProofHarness"],
  // cost comparison (ayni cost-report): the ledger fully on chain, and a plain ERC-20
  "contracts/MutualCredit.sol": ["MutualCredit"],
  "contracts/CommunityToken.sol": ["CommunityToken"],
};

module.exports = { SOLC_VERSION, SOLC_SETTINGS, EXPORTED };
