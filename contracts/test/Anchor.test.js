// Hardhat tests for contracts/Anchor.sol (in-process Hardhat network, no ports).
// Run: npm run test:contracts
"use strict";
const assert = require("node:assert/strict");
const { ethers } = require("hardhat");
const { StandardMerkleTree } = require("@openzeppelin/merkle-tree");

const GAS_TARGET = 31_500n;
const ZERO32 = ethers.ZeroHash;

function accumulate(acc, root, firstSeq, lastSeq) {
  const h = ethers.solidityPackedKeccak256(["bytes24", "bytes32", "uint64", "uint64"], [acc, root, firstSeq, lastSeq]);
  return ethers.dataSlice(h, 0, 24);
}

function randomRoot() {
  return ethers.hexlify(ethers.randomBytes(32));
}

// Revert data from the in-process Hardhat network (err.data) or from a JSON-RPC provider
// (ethers' err.data / err.info.error.data), decoded with the Anchor ABI.
const ANCHOR_ERRORS = new ethers.Interface([
  "error NotContiguous(uint64 expectedFirstSeq, uint64 firstSeq, uint64 lastSeq)",
  "error ZeroRoot()",
  "error NoCheckpoint()",
  "error AlreadyRetired()",
  "error ZeroAnchorer()",
  "error AccessControlUnauthorizedAccount(address account, bytes32 neededRole)",
]);

function decodeRevert(err) {
  const data = err.data ?? err.info?.error?.data;
  if (typeof data !== "string" || data.length < 10) return null;
  return ANCHOR_ERRORS.parseError(data);
}

async function expectRevert(promise, errorName) {
  let decoded;
  await assert.rejects(promise, (err) => {
    decoded = decodeRevert(err);
    assert.equal(decoded?.name, errorName, `expected ${errorName}: ${err.message}`);
    return true;
  });
  return decoded;
}

async function deploy() {
  const [admin, anchorer, backup, stranger] = await ethers.getSigners();
  const factory = await ethers.getContractFactory("Anchor");
  const anchor = await factory.deploy(admin.address, anchorer.address);
  await anchor.waitForDeployment();
  return { anchor, admin, anchorer, backup, stranger };
}

describe("Anchor", function () {
  describe("deployment", function () {
    it("starts at GENESIS bound to chain id and address, lastSeq 0", async function () {
      const { anchor, admin, anchorer, stranger } = await deploy();
      const { chainId } = await ethers.provider.getNetwork();
      const expected = ethers.dataSlice(
        ethers.keccak256(
          ethers.AbiCoder.defaultAbiCoder().encode(
            ["string", "uint256", "address"],
            ["Ayni.Anchor.v1", chainId, await anchor.getAddress()],
          ),
        ),
        0,
        24,
      );
      assert.equal(await anchor.GENESIS(), expected);
      const [acc, last] = await anchor.head();
      assert.equal(acc, expected);
      assert.equal(last, 0n);
      assert.equal(await anchor.lastAnchoredSeq(), 0n);
      assert.equal(await anchor.accumulator(), expected);
      assert.equal(await anchor.ANCHORER(), anchorer.address);
      assert.equal(await anchor.isAnchorer(anchorer.address), true);
      assert.equal(await anchor.isAnchorer(stranger.address), false);
      assert.equal(await anchor.hasRole(await anchor.DEFAULT_ADMIN_ROLE(), admin.address), true);
      assert.equal(await anchor.retired(), false);
    });

    it("rejects a zero anchoring key", async function () {
      const [admin] = await ethers.getSigners();
      const factory = await ethers.getContractFactory("Anchor");
      await expectRevert(factory.deploy(admin.address, ethers.ZeroAddress), "ZeroAnchorer");
    });
  });

  describe("access control", function () {
    it("only the anchoring key(s) may anchor", async function () {
      const { anchor, admin, anchorer, backup, stranger } = await deploy();
      await expectRevert(anchor.connect(stranger).anchor(randomRoot(), 1, 1), "AccessControlUnauthorizedAccount");
      await expectRevert(anchor.connect(admin).anchor(randomRoot(), 1, 1), "AccessControlUnauthorizedAccount");
      await (await anchor.connect(anchorer).anchor(randomRoot(), 1, 1)).wait();

      // an additional key through OpenZeppelin AccessControl, granted and revoked by the admin
      const role = await anchor.ANCHOR_ROLE();
      await expectRevert(anchor.connect(anchorer).grantRole(role, backup.address), "AccessControlUnauthorizedAccount");
      await expectRevert(anchor.connect(backup).anchor(randomRoot(), 2, 2), "AccessControlUnauthorizedAccount");
      await (await anchor.connect(admin).grantRole(role, backup.address)).wait();
      assert.equal(await anchor.isAnchorer(backup.address), true);
      await (await anchor.connect(backup).anchor(randomRoot(), 2, 2)).wait();
      await (await anchor.connect(admin).revokeRole(role, backup.address)).wait();
      await expectRevert(anchor.connect(backup).anchor(randomRoot(), 3, 3), "AccessControlUnauthorizedAccount");
      assert.equal(await anchor.lastAnchoredSeq(), 2n);
    });

    it("only the admin may retire; afterwards nobody can anchor", async function () {
      const { anchor, admin, anchorer, stranger } = await deploy();
      const root = randomRoot();
      await (await anchor.connect(anchorer).anchor(root, 1, 10)).wait();
      const [acc] = await anchor.head();
      await expectRevert(anchor.connect(anchorer).retire(), "AccessControlUnauthorizedAccount");
      await expectRevert(anchor.connect(stranger).retire(), "AccessControlUnauthorizedAccount");
      const rc = await (await anchor.connect(admin).retire()).wait();
      const ev = anchor.interface.parseLog(rc.logs.find((l) => l.address === anchor.target && anchor.interface.parseLog(l)?.name === "Retired"));
      assert.equal(ev.args.accumulator, acc);
      assert.equal(ev.args.lastSeq, 10n);
      assert.equal(await anchor.retired(), true);
      assert.equal(await anchor.checkpoints(acc), 10n);
      // indexers that follow Checkpointed learn this checkpoint too
      const cp = rc.logs.map((l) => anchor.interface.parseLog(l)).find((e) => e?.name === "Checkpointed");
      assert.deepEqual([...cp.args], [acc, 10n]);
      await expectRevert(anchor.connect(anchorer).anchor(randomRoot(), 11, 11), "NotContiguous");
      // what was anchored before stays verifiable
      assert.equal(await anchor.isAnchored(root, 1, 10, await anchor.GENESIS(), []), true);
      // a second retire() says so instead of doing nothing
      await expectRevert(anchor.connect(admin).retire(), "AlreadyRetired");
      // the retired head (acc, 2**64-1) is not reachable by replaying anything from it
      assert.equal(await anchor.isAnchored(root, 1, 10, await anchor.GENESIS(), [{ root: randomRoot(), firstSeq: 11n, lastSeq: 2n ** 64n - 1n }]), false);
    });

    it("a leaked anchoring key that ends a batch at 2**64-1 cannot make earlier batches unprovable", async function () {
      const { anchor, admin, anchorer, backup, stranger } = await deploy();
      await (await anchor.connect(admin).grantRole(await anchor.ANCHOR_ROLE(), backup.address)).wait();
      const genesis = await anchor.GENESIS();
      const honest = [];
      const accs = [genesis];
      let last = 0n;
      for (const size of [4n, 1n, 7n]) {
        const b = { root: randomRoot(), firstSeq: last + 1n, lastSeq: last + size };
        await (await anchor.connect(anchorer).anchor(b.root, b.firstSeq, b.lastSeq)).wait();
        honest.push(b);
        accs.push(accumulate(accs[accs.length - 1], b.root, b.firstSeq, b.lastSeq));
        last += size;
      }
      await (await anchor.connect(stranger).checkpoint()).wait(); // checkpoint at seq 12
      const b4 = { root: randomRoot(), firstSeq: 13n, lastSeq: 20n }; // after the last checkpoint
      await (await anchor.connect(anchorer).anchor(b4.root, b4.firstSeq, b4.lastSeq)).wait();
      honest.push(b4);
      accs.push(accumulate(accs[accs.length - 1], b4.root, b4.firstSeq, b4.lastSeq));
      // the attack, with the standby key (the primary would do the same)
      const MAX = 2n ** 64n - 1n;
      const hostile = { root: randomRoot(), firstSeq: 21n, lastSeq: MAX };
      await (await anchor.connect(backup).anchor(hostile.root, hostile.firstSeq, hostile.lastSeq)).wait();
      assert.equal(await anchor.retired(), true);
      await expectRevert(anchor.connect(stranger).checkpoint(), "NoCheckpoint");
      await expectRevert(anchor.connect(anchorer).anchor(randomRoot(), 21, 21), "NotContiguous");
      // the admin learns it cannot retire any more (it used to be a silent no-op)
      await expectRevert(anchor.connect(admin).retire(), "AlreadyRetired");
      // every honest batch, before and after the last checkpoint, still proves to the head
      for (let i = 0; i < honest.length; i++) {
        const b = honest[i];
        const later = [...honest.slice(i + 1), hostile];
        assert.equal(await anchor.isAnchored(b.root, b.firstSeq, b.lastSeq, accs[i], later), true, `batch ${i}`);
        assert.equal(await anchor.isAnchored(randomRoot(), b.firstSeq, b.lastSeq, accs[i], later), false);
      }
      assert.equal(await anchor.verifyChain(genesis, 0, [...honest, hostile]), true);
      const finalAcc = accumulate(accs[accs.length - 1], hostile.root, hostile.firstSeq, hostile.lastSeq);
      assert.equal(await anchor.isKnownState(finalAcc, MAX), true); // exactly the head
      assert.equal(await anchor.isKnownState(accs[accs.length - 1], MAX), false);
      // a different final batch does not land on the head
      assert.equal(await anchor.verifyChain(genesis, 0, [...honest, { ...hostile, root: randomRoot() }]), false);
      // the hostile batch itself proves nothing (it lands on the head, yet it is no ledger batch)
      assert.equal(await anchor.isAnchored(hostile.root, hostile.firstSeq, hostile.lastSeq, accs[accs.length - 1], []), false);
    });

    it("isAnchored refuses a batch past seq 2**62 or over 2**20 entries (a freeze below 2**64-1, a jump)", async function () {
      const MAX = 2n ** 64n - 1n;
      for (const [first, last] of [[1n, MAX - 1n], [1n, 2n ** 62n], [1n, 2n ** 20n + 1n]]) {
        const { anchor, admin, anchorer } = await deploy();
        const genesis = await anchor.GENESIS();
        const root = randomRoot();
        await (await anchor.connect(anchorer).anchor(root, first, last)).wait(); // anchor() cannot tell
        assert.equal(await anchor.isAnchored(root, first, last, genesis, []), false, `${first}..${last}`);
        await (await anchor.connect(admin).retire()).wait(); // checkpoints the hostile head
        assert.equal(await anchor.isAnchored(root, first, last, genesis, []), false, `${first}..${last} retired`);
      }
      // the largest plausible batch, ending just below 2**62, still proves
      const { anchor, anchorer } = await deploy();
      const genesis = await anchor.GENESIS();
      const a = { root: randomRoot(), firstSeq: 1n, lastSeq: 2n ** 20n };
      const b = { root: randomRoot(), firstSeq: 2n ** 20n + 1n, lastSeq: 2n ** 62n - 1n };
      await (await anchor.connect(anchorer).anchor(a.root, a.firstSeq, a.lastSeq)).wait();
      await (await anchor.connect(anchorer).anchor(b.root, b.firstSeq, b.lastSeq)).wait();
      assert.equal(await anchor.isAnchored(a.root, a.firstSeq, a.lastSeq, genesis, [b]), true);
      const accA = accumulate(genesis, a.root, a.firstSeq, a.lastSeq);
      assert.equal(await anchor.isAnchored(b.root, b.firstSeq, b.lastSeq, accA, []), false); // too big
    });
  });

  describe("ordering", function () {
    it("batches are contiguous, in order, non-empty, start at 1", async function () {
      const { anchor, anchorer } = await deploy();
      const a = anchor.connect(anchorer);
      await expectRevert(a.anchor(randomRoot(), 0, 0), "NotContiguous");
      await expectRevert(a.anchor(randomRoot(), 2, 5), "NotContiguous");
      await expectRevert(a.anchor(randomRoot(), 1, 0), "NotContiguous");
      await expectRevert(a.anchor(ZERO32, 1, 1), "ZeroRoot");
      await (await a.anchor(randomRoot(), 1, 5)).wait();
      await expectRevert(a.anchor(randomRoot(), 5, 9), "NotContiguous"); // overlap
      await expectRevert(a.anchor(randomRoot(), 7, 9), "NotContiguous"); // gap
      await expectRevert(a.anchor(randomRoot(), 6, 5), "NotContiguous"); // empty
      await expectRevert(a.anchor(randomRoot(), 1, 5), "NotContiguous"); // replay
      await (await a.anchor(randomRoot(), 6, 6)).wait(); // single-entry batch
      await (await a.anchor(randomRoot(), 7, 2n ** 64n - 2n)).wait(); // up to the uint64 limit
      assert.equal(await a.lastAnchoredSeq(), 2n ** 64n - 2n);
    });

    it("reports the expected first seq in NotContiguous", async function () {
      const { anchor, anchorer } = await deploy();
      await (await anchor.connect(anchorer).anchor(randomRoot(), 1, 3)).wait();
      const err = await expectRevert(anchor.connect(anchorer).anchor(randomRoot(), 9, 9), "NotContiguous");
      assert.deepEqual([...err.args], [4n, 9n, 9n]);
    });
  });

  describe("events and accumulator", function () {
    it("emits Anchored(root, firstSeq, lastSeq, accumulator) and updates the head", async function () {
      const { anchor, anchorer } = await deploy();
      let acc = await anchor.GENESIS();
      let last = 0n;
      for (const size of [1n, 2n, 1000n, 7n]) {
        const root = randomRoot();
        const rc = await (await anchor.connect(anchorer).anchor(root, last + 1n, last + size)).wait();
        assert.equal(rc.logs.length, 1);
        const ev = anchor.interface.parseLog(rc.logs[0]);
        assert.equal(ev.name, "Anchored");
        acc = accumulate(acc, root, last + 1n, last + size);
        assert.deepEqual([...ev.args], [root, last + 1n, last + size, acc]);
        assert.equal(rc.logs[0].topics[1], root); // indexed: find a batch by its root
        assert.equal(BigInt(rc.logs[0].topics[2]), last + 1n); // indexed: find a batch by its first seq
        last += size;
        assert.deepEqual([...(await anchor.head())], [acc, last]);
        assert.equal(await anchor.accumulate(ethers.dataSlice(acc, 0, 24), root, 1, 2), accumulate(acc, root, 1, 2));
      }
    });
  });

  describe("on-chain verification", function () {
    it("isAnchored / verifyChain accept exactly the anchored batches", async function () {
      const { anchor, anchorer } = await deploy();
      const genesis = await anchor.GENESIS();
      const batches = [];
      const accs = [genesis];
      let last = 0n;
      for (const size of [3n, 1n, 50n, 2n, 9n]) {
        const b = { root: randomRoot(), firstSeq: last + 1n, lastSeq: last + size };
        await (await anchor.connect(anchorer).anchor(b.root, b.firstSeq, b.lastSeq)).wait();
        batches.push(b);
        accs.push(accumulate(accs[accs.length - 1], b.root, b.firstSeq, b.lastSeq));
        last += size;
      }
      assert.equal(await anchor.verifyChain(genesis, 0, batches), true);
      assert.equal(await anchor.verifyChain(accs[2], batches[1].lastSeq, batches.slice(2)), true);
      assert.equal(await anchor.verifyChain(genesis, 0, batches.slice(0, 4)), false); // stops short of the head
      for (let i = 0; i < batches.length; i++) {
        const b = batches[i];
        const later = batches.slice(i + 1);
        assert.equal(await anchor.isAnchored(b.root, b.firstSeq, b.lastSeq, accs[i], later), true, `batch ${i}`);
        // any change is rejected: root, range, predecessor accumulator, later batches
        assert.equal(await anchor.isAnchored(randomRoot(), b.firstSeq, b.lastSeq, accs[i], later), false);
        assert.equal(await anchor.isAnchored(b.root, b.firstSeq, b.lastSeq + 1n, accs[i], later), false);
        if (b.lastSeq > b.firstSeq) {
          assert.equal(await anchor.isAnchored(b.root, b.firstSeq + 1n, b.lastSeq, accs[i], later), false);
        }
        assert.equal(await anchor.isAnchored(b.root, b.firstSeq, b.lastSeq, accs[i + 1], later), false);
        if (later.length) {
          assert.equal(await anchor.isAnchored(b.root, b.firstSeq, b.lastSeq, accs[i], later.slice(1)), false);
          const tampered = later.map((x) => ({ ...x }));
          tampered[tampered.length - 1].root = randomRoot();
          assert.equal(await anchor.isAnchored(b.root, b.firstSeq, b.lastSeq, accs[i], tampered), false);
        }
      }
      assert.equal(await anchor.isAnchored(batches[0].root, 0, 3, genesis, batches.slice(1)), false);
    });

    it("checkpoints let a proof stop early", async function () {
      const { anchor, anchorer, stranger } = await deploy();
      const genesis = await anchor.GENESIS();
      await expectRevert(anchor.connect(stranger).checkpoint(), "NoCheckpoint");
      const r1 = randomRoot();
      await (await anchor.connect(anchorer).anchor(r1, 1, 4)).wait();
      const acc1 = accumulate(genesis, r1, 1, 4);
      await (await anchor.connect(stranger).checkpoint()).wait(); // permissionless
      assert.equal(await anchor.checkpoints(acc1), 4n);
      await (await anchor.connect(anchorer).anchor(randomRoot(), 5, 8)).wait();
      await (await anchor.connect(anchorer).anchor(randomRoot(), 9, 9)).wait();
      assert.equal(await anchor.isAnchored(r1, 1, 4, genesis, []), true); // ends at the checkpoint
      assert.equal(await anchor.isKnownState(acc1, 4), true);
      assert.equal(await anchor.isKnownState(acc1, 5), false);
    });
  });

  describe("gas", function () {
    it("is constant per call and within the target (printed)", async function () {
      const { anchor, admin, anchorer, backup } = await deploy();
      await (await anchor.connect(admin).grantRole(await anchor.ANCHOR_ROLE(), backup.address)).wait();
      const rows = [];
      let last = 0n;
      for (const size of [1n, 10n, 100n, 1000n, 10000n, 100000n, 1n]) {
        const rc = await (await anchor.connect(anchorer).anchor(randomRoot(), last + 1n, last + size)).wait();
        rows.push({ key: "primary", firstSeq: last + 1n, batch: size, gasUsed: rc.gasUsed });
        last += size;
      }
      const rc = await (await anchor.connect(backup).anchor(randomRoot(), last + 1n, last + 100n)).wait();
      rows.push({ key: "ANCHOR_ROLE", firstSeq: last + 1n, batch: 100n, gasUsed: rc.gasUsed });
      console.log("      gas per anchor call (tx gasUsed):");
      for (const r of rows) console.log(`        ${r.key.padEnd(11)} first=${String(r.firstSeq).padEnd(7)} batch=${String(r.batch).padEnd(7)} gas=${r.gasUsed}`);
      const primary = rows.filter((r) => r.key === "primary").map((r) => r.gasUsed);
      const max = primary.reduce((a, b) => (a > b ? a : b));
      const min = primary.reduce((a, b) => (a < b ? a : b));
      // only calldata varies (16 gas per non-zero byte of the seq numbers), never the batch size
      assert.ok(max - min <= 100n, `gas varies by ${max - min}`);
      assert.ok(max <= GAS_TARGET, `primary key anchor costs ${max} > ${GAS_TARGET}`);
      assert.ok(rows[rows.length - 1].gasUsed < max + 2_600n); // role key: + one cold SLOAD
    });
  });

  describe("Merkle proofs (OpenZeppelin StandardMerkleTree + MerkleProof.sol)", function () {
    it("a ledger leaf (uint64 seq, bytes32 entryHash) verifies on chain", async function () {
      const harness = await (await ethers.getContractFactory("MerkleProofHarness")).deploy();
      await harness.waitForDeployment();
      const values = [];
      for (let seq = 1; seq <= 13; seq++) values.push([String(seq), ethers.hexlify(ethers.randomBytes(32))]);
      const tree = StandardMerkleTree.of(values, ["uint64", "bytes32"]);
      for (const [i, v] of tree.entries()) {
        const proof = tree.getProof(i);
        assert.equal(await harness.entryLeaf(v[0], v[1]), tree.leafHash(v));
        assert.equal(await harness.verify(proof, tree.root, tree.leafHash(v)), true);
        assert.equal(await harness.verifyEntry(proof, tree.root, v[0], v[1]), true);
        assert.equal(await harness.verifyEntry(proof, tree.root, BigInt(v[0]) + 100n, v[1]), false);
      }
    });
  });
});
