// Hardhat tests for contracts/MutualCredit.sol and contracts/CommunityToken.sol
// (in-process Hardhat network, no ports). Run: npm run test:contracts
"use strict";
const assert = require("node:assert/strict");
const { ethers } = require("hardhat");

const NO_CEILING = 2n ** 64n - 1n;
const [ACTIVE, FROZEN, CLOSED] = [1, 2, 3];

// Currency codes as bytes12, left-aligned (as Solidity's bytes12(bytes(code))).
function bytes12(code) {
  return ethers.hexlify(ethers.concat([ethers.toUtf8Bytes(code), new Uint8Array(12 - code.length)]));
}
const HOUR = bytes12("HOUR");
const CRED = bytes12("CRED");

async function expectRevert(promise, contract, errorName) {
  await assert.rejects(promise, (err) => {
    const data = err.data ?? err.info?.error?.data;
    const decoded = typeof data === "string" && data.length >= 10 ? contract.interface.parseError(data) : null;
    assert.equal(decoded?.name, errorName, `expected ${errorName}: ${err.message}`);
    return true;
  });
}

async function deployMC() {
  const [admin, alice, bob, carol, relayer, stranger] = await ethers.getSigners();
  const community = ethers.hexlify(ethers.randomBytes(32));
  const mc = await (await ethers.getContractFactory("MutualCredit")).deploy(admin.address, community);
  await mc.waitForDeployment();
  await (await mc.addCurrency(bytes12("HOUR"), 600, 2400)).wait(); // owe 10 h, hold 40 h (minutes)
  await (await mc.addCurrency(bytes12("CRED"), 10_000, NO_CEILING)).wait();
  for (const s of [alice, bob, carol]) await (await mc.openAccount(s.address)).wait();
  return { mc, community, admin, alice, bob, carol, relayer, stranger };
}

async function sumOfBalances(mc, accounts, currency) {
  let sum = 0n;
  for (const a of accounts) sum += await mc.balanceOf(a.address, currency);
  return sum;
}

describe("MutualCredit", function () {
  it("creates credit by payment, within limits and ceilings, zero-sum", async function () {
    const { mc, alice, bob, carol } = await deployMC();
    const who = [alice, bob, carol];
    const tx = await mc.connect(alice).transfer(bob.address, HOUR, 600);
    const rc = await tx.wait();
    const ev = mc.interface.parseLog(rc.logs[0]);
    assert.equal(ev.name, "Transfer");
    assert.deepEqual([ev.args.payer, ev.args.payee, ev.args.currency, ev.args.amount], [alice.address, bob.address, HOUR, 600n]);
    assert.equal(await mc.balanceOf(alice.address, HOUR), -600n);
    assert.equal(await mc.balanceOf(bob.address, HOUR), 600n);
    // alice is at her limit: one minute more is refused, and nothing moves
    await expectRevert(mc.connect(alice).transfer(bob.address, HOUR, 1), mc, "OverCreditLimit");
    // bob may hold at most 2400: carol (limit 600) cannot push him over
    await (await mc.connect(bob).transfer(carol.address, HOUR, 100)).wait();
    await (await mc.setLimit(carol.address, HOUR, 5000, NO_CEILING)).wait();
    await expectRevert(mc.connect(carol).transfer(bob.address, HOUR, 2400 - 500 + 1), mc, "OverCeiling");
    await (await mc.connect(carol).transfer(bob.address, HOUR, 2400 - 500)).wait();
    assert.equal(await mc.balanceOf(bob.address, HOUR), 2400n);
    assert.equal(await sumOfBalances(mc, who, HOUR), 0n);
    const [bal, limit, ceiling, status] = await mc.position(carol.address, HOUR);
    assert.deepEqual([bal, limit, ceiling, status], [-1800n, 5000n, NO_CEILING, BigInt(ACTIVE)]);
  });

  it("refuses zero, oversize, self, unknown currency and strangers", async function () {
    const { mc, alice, bob, stranger } = await deployMC();
    await expectRevert(mc.connect(alice).transfer(bob.address, CRED, 0), mc, "BadAmount");
    await expectRevert(mc.connect(alice).transfer(bob.address, CRED, 2n ** 64n), mc, "BadAmount");
    await expectRevert(mc.connect(alice).transfer(alice.address, CRED, 1), mc, "SelfTransfer");
    await expectRevert(mc.connect(alice).transfer(bob.address, bytes12("EUR"), 1), mc, "NotActive");
    await expectRevert(mc.connect(alice).transfer(stranger.address, CRED, 1), mc, "NotActive");
    await expectRevert(mc.connect(stranger).transfer(alice.address, CRED, 1), mc, "NotActive");
  });

  it("only the cooperative sets limits, opens, freezes and closes", async function () {
    const { mc, admin, alice, bob, stranger } = await deployMC();
    await expectRevert(mc.connect(alice).setLimit(alice.address, CRED, 10n ** 9n, NO_CEILING), mc, "AccessControlUnauthorizedAccount");
    await expectRevert(mc.connect(alice).openAccount(stranger.address), mc, "AccessControlUnauthorizedAccount");
    await expectRevert(mc.connect(alice).setStatus(bob.address, FROZEN), mc, "AccessControlUnauthorizedAccount");
    await expectRevert(mc.connect(alice).addCurrency(bytes12("EUR"), 1, 1), mc, "AccessControlUnauthorizedAccount");
    await expectRevert(mc.openAccount(alice.address), mc, "AlreadyOpen");
    await expectRevert(mc.setLimit(stranger.address, CRED, 1, 1), mc, "NotOpen");
    await expectRevert(mc.setLimit(alice.address, bytes12("EUR"), 1, 1), mc, "UnknownCurrency");
    await expectRevert(mc.setStatus(bob.address, 4), mc, "BadStatus");

    await (await mc.connect(admin).setStatus(bob.address, FROZEN)).wait();
    await expectRevert(mc.connect(alice).transfer(bob.address, CRED, 1), mc, "NotActive");
    await expectRevert(mc.connect(bob).transfer(alice.address, CRED, 1), mc, "NotActive");
    await (await mc.setStatus(bob.address, ACTIVE)).wait();
    await (await mc.connect(alice).transfer(bob.address, CRED, 5)).wait();
    await expectRevert(mc.setStatus(bob.address, CLOSED), mc, "NonZeroBalance");
    await (await mc.connect(bob).transfer(alice.address, CRED, 5)).wait();
    await (await mc.setStatus(bob.address, CLOSED)).wait();
    await expectRevert(mc.connect(alice).transfer(bob.address, CRED, 1), mc, "NotActive");
  });

  it("closing is final: no reopening, unfreezing, new limits or new currencies", async function () {
    const { mc, bob } = await deployMC();
    await (await mc.setStatus(bob.address, CLOSED)).wait();
    for (const s of [ACTIVE, FROZEN, CLOSED]) await expectRevert(mc.setStatus(bob.address, s), mc, "AccountClosed");
    await expectRevert(mc.openAccount(bob.address), mc, "AccountClosed");
    await expectRevert(mc.setLimit(bob.address, CRED, 1, 1), mc, "AccountClosed");
    const EUR = bytes12("EUR");
    await (await mc.addCurrency(EUR, 100, NO_CEILING)).wait();
    await expectRevert(mc.openAccount(bob.address), mc, "AccountClosed");
    const [, , , status] = await mc.position(bob.address, EUR);
    assert.equal(status, 0n); // the new currency stays unopened for a closed account
  });

  describe("a currency added after accounts were opened", function () {
    const EUR = bytes12("EUR");
    async function withEur() {
      const ctx = await deployMC();
      await (await ctx.mc.addCurrency(EUR, 500, NO_CEILING)).wait();
      return ctx;
    }

    it("openAccount opens only the missing currency, with its defaults, and keeps balances", async function () {
      const { mc, alice, bob } = await withEur();
      await (await mc.connect(alice).transfer(bob.address, CRED, 77)).wait();
      await expectRevert(mc.connect(alice).transfer(bob.address, EUR, 1), mc, "NotActive");
      for (const s of [alice, bob]) await (await mc.openAccount(s.address)).wait();
      assert.deepEqual([...(await mc.position(alice.address, EUR))], [0n, 500n, NO_CEILING, BigInt(ACTIVE)]);
      assert.deepEqual([...(await mc.position(alice.address, CRED))], [-77n, 10_000n, NO_CEILING, BigInt(ACTIVE)]);
      await (await mc.connect(alice).transfer(bob.address, EUR, 500)).wait();
      await expectRevert(mc.connect(alice).transfer(bob.address, EUR, 1), mc, "OverCreditLimit");
      await (await mc.setLimit(alice.address, EUR, 900, NO_CEILING)).wait();
      await (await mc.connect(alice).transfer(bob.address, EUR, 400)).wait();
      assert.equal(await mc.balanceOf(bob.address, EUR), 900n);
      await expectRevert(mc.openAccount(alice.address), mc, "AlreadyOpen"); // nothing left to open
    });

    it("setLimit needs the position opened first", async function () {
      const { mc, alice } = await withEur();
      await expectRevert(mc.setLimit(alice.address, EUR, 1, 1), mc, "NotOpen");
      await (await mc.openAccount(alice.address)).wait();
      await (await mc.setLimit(alice.address, EUR, 1, 1)).wait();
      assert.deepEqual([...(await mc.position(alice.address, EUR))], [0n, 1n, 1n, BigInt(ACTIVE)]);
    });

    it("setStatus freezes every currency, opening the missing one frozen; unfreezing frees all", async function () {
      const { mc, alice, bob } = await withEur();
      await (await mc.openAccount(bob.address)).wait(); // bob has EUR, alice not yet
      await (await mc.setStatus(alice.address, FROZEN)).wait();
      for (const c of [HOUR, CRED, EUR]) {
        const [bal, limit, , status] = await mc.position(alice.address, c);
        assert.equal(status, BigInt(FROZEN), `currency ${c}`);
        if (c === EUR) assert.deepEqual([bal, limit], [0n, 500n]); // opened with the defaults
      }
      await expectRevert(mc.connect(alice).transfer(bob.address, CRED, 1), mc, "NotActive");
      await expectRevert(mc.openAccount(alice.address), mc, "AlreadyOpen");
      await (await mc.setStatus(alice.address, ACTIVE)).wait();
      await (await mc.connect(alice).transfer(bob.address, EUR, 5)).wait();
      await (await mc.connect(bob).transfer(alice.address, EUR, 5)).wait();
      await (await mc.setStatus(alice.address, CLOSED)).wait();
      for (const c of [HOUR, CRED, EUR]) assert.equal((await mc.position(alice.address, c))[3], BigInt(CLOSED));
    });

    it("a frozen member re-opened for a new currency stays frozen in it", async function () {
      const { mc, carol } = await deployMC();
      await (await mc.setStatus(carol.address, FROZEN)).wait();
      await (await mc.addCurrency(EUR, 500, NO_CEILING)).wait();
      await (await mc.openAccount(carol.address)).wait();
      assert.equal((await mc.position(carol.address, EUR))[3], BigInt(FROZEN));
    });

    it("closing skips an unopened currency and still needs zero balances elsewhere", async function () {
      const { mc, alice, bob } = await withEur();
      await (await mc.connect(alice).transfer(bob.address, CRED, 3)).wait();
      await expectRevert(mc.setStatus(alice.address, CLOSED), mc, "NonZeroBalance");
      await (await mc.connect(bob).transfer(alice.address, CRED, 3)).wait();
      await (await mc.setStatus(alice.address, CLOSED)).wait();
      assert.equal((await mc.position(alice.address, EUR))[3], 0n);
      assert.equal((await mc.position(alice.address, CRED))[3], BigInt(CLOSED));
    });
  });

  describe("transferWithSig (a relayer submits a member-signed Ayni Transfer)", function () {
    async function signed(mc, community, payer, payee, over = {}, domainOver = {}) {
      const { chainId } = await ethers.provider.getNetwork();
      const domain = { name: "Ayni", version: "1", chainId, verifyingContract: await mc.getAddress(), salt: community, ...domainOver };
      const types = {
        Transfer: [
          { name: "payer", type: "address" }, { name: "payee", type: "address" },
          { name: "currency", type: "string" }, { name: "amount", type: "uint256" },
          { name: "nonce", type: "uint256" }, { name: "validUntil", type: "uint64" },
          { name: "memoHash", type: "bytes32" }, { name: "requestId", type: "bytes32" },
        ],
      };
      const block = await ethers.provider.getBlock("latest");
      const msg = {
        payer: payer.address, payee: payee.address, currency: "CRED", amount: 250n,
        nonce: BigInt(ethers.hexlify(ethers.randomBytes(16))), validUntil: BigInt(block.timestamp + 3600),
        memoHash: ethers.ZeroHash, requestId: ethers.ZeroHash, ...over,
      };
      const sig = await payer.signTypedData(domain, types, msg);
      const args = [msg.payer, msg.payee, msg.currency, msg.amount, msg.nonce, msg.validUntil, msg.memoHash, msg.requestId, sig];
      return { msg, sig, args };
    }

    it("accepts the payer's signature once, from any relayer", async function () {
      const { mc, community, alice, bob, relayer } = await deployMC();
      const { args } = await signed(mc, community, alice, bob);
      await (await mc.connect(relayer).transferWithSig(...args)).wait();
      assert.equal(await mc.balanceOf(alice.address, CRED), -250n);
      assert.equal(await mc.balanceOf(bob.address, CRED), 250n);
      await expectRevert(mc.connect(relayer).transferWithSig(...args), mc, "NonceUsed");
    });

    it("a signature is good for one deployment only: no replay on another contract of the community", async function () {
      const { mc, community, admin, alice, bob, relayer } = await deployMC();
      const other = await (await ethers.getContractFactory("MutualCredit")).deploy(admin.address, community);
      await other.waitForDeployment();
      await (await other.addCurrency(CRED, 10_000, NO_CEILING)).wait();
      for (const s of [alice, bob]) await (await other.openAccount(s.address)).wait();
      const { args } = await signed(mc, community, alice, bob);
      await (await mc.connect(relayer).transferWithSig(...args)).wait();
      await expectRevert(other.connect(relayer).transferWithSig(...args), other, "BadSignature");
      assert.equal(await other.balanceOf(alice.address, CRED), 0n);
      const { chainId } = await ethers.provider.getNetwork();
      const expected = ethers.TypedDataEncoder.hashDomain(
        { name: "Ayni", version: "1", chainId, verifyingContract: await mc.getAddress(), salt: community });
      assert.equal(await mc.domainSeparator(), expected);
    });

    it("refuses forged, altered, expired and other-community signatures", async function () {
      const { mc, community, alice, bob, carol, relayer } = await deployMC();
      // bob signs "alice pays carol"
      const forged = await signed(mc, community, bob, carol, { payer: alice.address });
      await expectRevert(mc.connect(relayer).transferWithSig(...forged.args), mc, "BadSignature");
      const ok = await signed(mc, community, alice, bob);
      const altered = [...ok.args];
      altered[3] = 251n;
      await expectRevert(mc.connect(relayer).transferWithSig(...altered), mc, "BadSignature");
      const other = await signed(mc, ethers.hexlify(ethers.randomBytes(32)), alice, bob);
      await expectRevert(mc.connect(relayer).transferWithSig(...other.args), mc, "BadSignature");
      // Ayni's off-chain domain (no verifyingContract): an off-chain signature never pays on chain
      const offChain = await signed(mc, community, alice, bob, {}, { verifyingContract: undefined });
      await expectRevert(mc.connect(relayer).transferWithSig(...offChain.args), mc, "BadSignature");
      const expired = await signed(mc, community, alice, bob, { validUntil: 1n });
      await expectRevert(mc.connect(relayer).transferWithSig(...expired.args), mc, "Expired");
      assert.equal(await mc.balanceOf(alice.address, CRED), 0n);
    });
  });

  it("gas: a transfer costs the same to a fresh account and to an old one", async function () {
    const { mc, alice, bob, carol } = await deployMC();
    const gas = async (p) => (await (await p).wait()).gasUsed;
    const first = await gas(mc.connect(alice).transfer(carol.address, CRED, 1234)); // carol's first receipt
    const again = await gas(mc.connect(alice).transfer(carol.address, CRED, 1234));
    const back = await gas(mc.connect(carol).transfer(bob.address, CRED, 1234));
    console.log(`      MutualCredit transfer gas: first ${first}, repeat ${again}, other ${back}`);
    assert.ok(first < 40_000n, `transfer gas ${first}`);
    assert.ok(first - again < 100n && again - first < 100n);
  });
});

describe("CommunityToken (ERC-20 baseline)", function () {
  it("mints the supply to the holder and moves it like any ERC-20", async function () {
    const [treasury, alice, bob] = await ethers.getSigners();
    const token = await (await ethers.getContractFactory("CommunityToken")).deploy("Community Credit", "CRED", treasury.address, 1_000_000n);
    await token.waitForDeployment();
    assert.equal(await token.decimals(), 2n);
    assert.equal(await token.totalSupply(), 1_000_000n);
    const toNew = (await (await token.transfer(alice.address, 500n)).wait()).gasUsed;
    const toOld = (await (await token.transfer(alice.address, 500n)).wait()).gasUsed;
    console.log(`      ERC-20 transfer gas: new holder ${toNew}, existing holder ${toOld}`);
    assert.ok(toNew > toOld + 15_000n); // a new holder's balance slot goes zero -> non-zero
    assert.equal(await token.balanceOf(alice.address), 1000n);
    // no credit: bob, holding nothing, cannot pay
    await assert.rejects(token.connect(bob).transfer(alice.address, 1n));
  });
});
