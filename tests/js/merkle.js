#!/usr/bin/env node
// Reference side of tests/test_merkle.py: builds trees with the npm library itself.
// stdin: JSON list of jobs {"types": [...], "values": [[...], ...], "sortLeaves": bool?}
//   or {"leaves": ["0x..", ...], "sortLeaves": bool?} (SimpleMerkleTree over raw leaf hashes:
//   same node hashing and layout, leaves taken as given).
// stdout: JSON list of {"root", "dump", "proofs": [[...] per value index]}.
"use strict";
const path = require("node:path");
const ROOT = path.resolve(__dirname, "..", "..");
const { StandardMerkleTree, SimpleMerkleTree } = require(require.resolve("@openzeppelin/merkle-tree", { paths: [ROOT] }));

let input = "";
process.stdin.setEncoding("utf8");
process.stdin.on("data", (c) => (input += c));
process.stdin.on("end", () => {
  const jobs = JSON.parse(input);
  const out = jobs.map((job) => {
    const options = { sortLeaves: job.sortLeaves ?? true };
    const tree = job.leaves
      ? SimpleMerkleTree.of(job.leaves, options)
      : StandardMerkleTree.of(job.values, job.types, options);
    const n = tree.length;
    const proofs = [];
    for (let i = 0; i < n; i++) proofs.push(tree.getProof(i));
    return { root: tree.root, dump: tree.dump(), proofs };
  });
  process.stdout.write(JSON.stringify(out));
});
