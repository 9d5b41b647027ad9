// SPDX-License-Identifier: AGPL-3.0-or-later
pragma solidity 0.8.30;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";

/// @title Ayni anchor: a cooperative's ledger batches, committed to a public chain.
/// @notice Each call anchors the Merkle root of the ledger entries `firstSeq..lastSeq`.
/// Batches are contiguous and in order (the first starts at seq 1). The contract keeps ONE
/// storage slot, `head = accumulator (bytes24) ‖ lastSeq (uint64)`, where
///     accumulator' = bytes24(keccak256(abi.encodePacked(accumulator, root, firstSeq, lastSeq)))
/// and emits `Anchored` with the full root and the new accumulator. Gas per call is constant
/// (independent of the batch size): one SLOAD + SSTORE of a non-zero slot, one keccak over
/// 72 bytes, one log.
/// Anyone can check on chain that a (root, firstSeq, lastSeq) was anchored by replaying the
/// batches from the accumulator just before it (GENESIS or the previous `Anchored` event's
/// accumulator) up to the current head or to a recorded checkpoint: see `isAnchored`.
/// Design, gas figures and the security argument: docs/anchoring.md.
/// @dev Only hashes and sequence numbers ever reach the chain; no personal data.
contract Anchor is AccessControl {
    /// @notice Role of additional anchoring keys (e.g. a standby server), granted and revoked by
    /// DEFAULT_ADMIN_ROLE. Costs ~2,200 gas more per call than the primary key (cold SLOAD).
    bytes32 public constant ANCHOR_ROLE = keccak256("ANCHOR_ROLE");

    /// @notice The cooperative's primary anchoring key. Checked against an immutable, so the
    /// hot path reads no storage for access control. It cannot be revoked on its own: if it
    /// leaks, the admin calls `retire()` and the cooperative deploys a new contract. Keep the
    /// admin a different, cold key: an anchoring key that is also the admin can renounce the
    /// admin role or grant more anchoring keys, and then nobody can retire.
    address public immutable ANCHORER;

    /// @notice Accumulator before the first batch; binds the chain of batches to this
    /// contract and chain id: bytes24(keccak256(abi.encode("Ayni.Anchor.v1", chainid, this))).
    bytes24 public immutable GENESIS;

    uint64 private constant SEQ_MASK = type(uint64).max;
    /// @dev No real ledger reaches these, so a batch past either bound is a hostile one (a leaked
    /// anchoring key freezing the contract or jumping it past any log) and `isAnchored` refuses it.
    /// `anchor()` does not check them (no gas on the hot path): the verifiers do, with the same
    /// bounds (ledger/verify/chain_types.py, docs/anchoring.md "Hostile batches").
    uint64 private constant IMPLAUSIBLE_SEQ = 2 ** 62; // a lastSeq at or past this
    uint64 private constant MAX_BATCH_SIZE = 2 ** 20; // entries in one batch at most

    /// @dev Accumulator in the high 24 bytes, lastSeq in the low 8 bytes. Never zero (set to
    /// GENESIS in the constructor), so every anchor call pays the cheap non-zero -> non-zero
    /// SSTORE, the first one included.
    bytes32 private _head;

    /// @notice Accumulator => lastSeq of heads recorded with `checkpoint()` (or by `retire()`).
    /// A verifier may stop replaying at a checkpoint instead of the current head.
    mapping(bytes24 accumulator => uint64 lastSeq) public checkpoints;

    struct Batch {
        bytes32 root;
        uint64 firstSeq;
        uint64 lastSeq;
    }

    /// @notice Batch `firstSeq..lastSeq` with Merkle root `root` was anchored;
    /// `accumulator` is the head accumulator after it.
    event Anchored(bytes32 indexed root, uint64 indexed firstSeq, uint64 lastSeq, bytes24 accumulator);

    /// @notice The head (accumulator, lastSeq) was recorded as a checkpoint.
    event Checkpointed(bytes24 indexed accumulator, uint64 lastSeq);

    /// @notice The admin retired the contract; (accumulator, lastSeq) is its final state.
    event Retired(bytes24 accumulator, uint64 lastSeq);

    /// @notice `firstSeq` must be `expectedFirstSeq` and `lastSeq >= firstSeq`.
    error NotContiguous(uint64 expectedFirstSeq, uint64 firstSeq, uint64 lastSeq);
    /// @notice A zero root is never a Merkle root of hashed leaves.
    error ZeroRoot();
    /// @notice Nothing anchored yet, or the contract is retired.
    error NoCheckpoint();
    /// @notice `retire()` was already called, or an anchoring key ended a batch at 2**64 - 1
    /// (a hostile retirement: see `isKnownState`). Nothing left to retire.
    error AlreadyRetired();
    /// @notice The primary anchoring key must be a real address.
    error ZeroAnchorer();

    constructor(address admin, address anchorer) {
        if (anchorer == address(0)) revert ZeroAnchorer();
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        ANCHORER = anchorer;
        bytes24 genesis = bytes24(keccak256(abi.encode("Ayni.Anchor.v1", block.chainid, address(this))));
        GENESIS = genesis;
        _head = bytes32(genesis);
    }

    /// @notice Anchor the Merkle root of ledger entries `firstSeq..lastSeq`.
    /// @dev Caller is ANCHORER or holds ANCHOR_ROLE; `firstSeq == lastAnchoredSeq() + 1`,
    /// `lastSeq >= firstSeq`, `root != 0`.
    function anchor(bytes32 root, uint64 firstSeq, uint64 lastSeq) external {
        if (msg.sender != ANCHORER) _checkRole(ANCHOR_ROLE);
        bytes32 h = _head;
        uint64 prevLast = uint64(uint256(h));
        unchecked {
            // prevLast + 1 in 256 bits cannot overflow; a uint64 firstSeq never equals 2**64,
            // so nothing can follow a batch ending at 2**64 - 1 (that is how `retire` works, and
            // why a leaked anchoring key can stop the contract: see `isKnownState`).
            if (uint256(firstSeq) != uint256(prevLast) + 1 || lastSeq < firstSeq) {
                revert NotContiguous(prevLast + 1, firstSeq, lastSeq);
            }
        }
        if (root == bytes32(0)) revert ZeroRoot();
        bytes24 acc = accumulate(bytes24(h), root, firstSeq, lastSeq);
        _head = bytes32(acc) | bytes32(uint256(lastSeq));
        emit Anchored(root, firstSeq, lastSeq, acc);
    }

    /// @notice Record the current head so that later proofs can stop there.
    /// @dev Permissionless: it only ever records a true head, and the caller pays for it.
    function checkpoint() external returns (bytes24 acc, uint64 last) {
        (acc, last) = head();
        if (last == 0 || last == SEQ_MASK) revert NoCheckpoint();
        checkpoints[acc] = last;
        emit Checkpointed(acc, last);
    }

    /// @notice Emergency stop (e.g. the primary key leaked): records the current head as a
    /// checkpoint (emitting `Checkpointed`), then sets the head's lastSeq to 2**64 - 1 so that
    /// no key can anchor again. Every batch anchored before stays verifiable through the
    /// checkpoint. Reverts with `AlreadyRetired` if the contract is retired already, including
    /// by an anchoring key that anchored a batch ending at 2**64 - 1: that batch is then the
    /// final head, and everything anchored before it stays verifiable through it.
    function retire() external onlyRole(DEFAULT_ADMIN_ROLE) {
        (bytes24 acc, uint64 last) = head();
        if (last == SEQ_MASK) revert AlreadyRetired();
        if (last != 0) {
            checkpoints[acc] = last;
            emit Checkpointed(acc, last);
        }
        _head = bytes32(acc) | bytes32(uint256(SEQ_MASK));
        emit Retired(acc, last);
    }

    /// @notice True once no further batch can be anchored: the admin called `retire()`, or an
    /// anchoring key anchored a batch ending at 2**64 - 1 (a hostile retirement).
    function retired() external view returns (bool) {
        return uint64(uint256(_head)) == SEQ_MASK;
    }

    /// @notice True iff `account` may call `anchor`.
    function isAnchorer(address account) external view returns (bool) {
        return account == ANCHORER || hasRole(ANCHOR_ROLE, account);
    }

    /// @notice The accumulator step: bytes24(keccak256(abi.encodePacked(acc, root, firstSeq, lastSeq))).
    function accumulate(bytes24 acc, bytes32 root, uint64 firstSeq, uint64 lastSeq) public pure returns (bytes24 next) {
        assembly ("memory-safe") {
            let p := mload(0x40) // scratch space in free memory; not allocated, only read back by keccak
            mstore(p, acc) // bytes24 is left-aligned: bytes 0..23
            mstore(add(p, 24), root) // bytes 24..55
            mstore(add(p, 56), shl(192, firstSeq)) // bytes 56..63
            mstore(add(p, 64), shl(192, lastSeq)) // bytes 64..71
            next := and(keccak256(p, 72), not(0xffffffffffffffff))
        }
    }

    /// @notice Current head: accumulator after the last batch (GENESIS if none) and its lastSeq
    /// (0 if none; 2**64 - 1 once retired).
    function head() public view returns (bytes24 accumulator_, uint64 lastSeq_) {
        bytes32 h = _head;
        return (bytes24(h), uint64(uint256(h)));
    }

    /// @notice Last anchored seq (0 before the first batch); the next batch must start right after it.
    function lastAnchoredSeq() external view returns (uint64) {
        return uint64(uint256(_head));
    }

    /// @notice Accumulator after the last batch (GENESIS before the first batch).
    function accumulator() external view returns (bytes24) {
        return bytes24(_head);
    }

    /// @notice Apply `batches` to the state (fromAcc, fromLastSeq), checking contiguity.
    /// @return ok false if a batch is not contiguous or empty; otherwise the resulting state.
    function replay(bytes24 fromAcc, uint64 fromLastSeq, Batch[] calldata batches)
        public
        pure
        returns (bool ok, bytes24 acc, uint64 last)
    {
        acc = fromAcc;
        last = fromLastSeq;
        for (uint256 i = 0; i < batches.length; ++i) {
            Batch calldata b = batches[i];
            if (uint256(b.firstSeq) != uint256(last) + 1 || b.lastSeq < b.firstSeq) return (false, acc, last);
            acc = accumulate(acc, b.root, b.firstSeq, b.lastSeq);
            last = b.lastSeq;
        }
        return (true, acc, last);
    }

    /// @notice True iff (acc, last) is the current head or a recorded checkpoint.
    /// @dev The exact head counts even when its lastSeq is 2**64 - 1. An anchoring key can end a
    /// batch there (`anchor(x, next, 2**64 - 1)`, a hostile retirement): the honest batches
    /// before it must stay verifiable by replaying through that batch to the head. After an
    /// admin `retire()` the head is (accumulator before, 2**64 - 1); a replay lands there only
    /// if a batch ending at 2**64 - 1 hashes to that accumulator, a 192-bit preimage. Checking
    /// this instead of refusing lastSeq == 2**64 - 1 in `anchor()` costs no anchor gas.
    /// Checkpoints never hold 2**64 - 1 (`checkpoint()` and `retire()` refuse it).
    function isKnownState(bytes24 acc, uint64 last) public view returns (bool) {
        if (last == 0) return false;
        if (bytes32(acc) | bytes32(uint256(last)) == _head) return true;
        return last != SEQ_MASK && checkpoints[acc] == last;
    }

    /// @notice True iff `batches`, applied from (fromAcc, fromLastSeq), are contiguous and end at
    /// the current head or at a checkpoint, i.e. they are the batches anchored after a state with
    /// accumulator fromAcc (GENESIS, 0 for the whole history). It says they were anchored, not
    /// that they are ledger batches: one ending at or past seq 2**62 or holding more than 2**20
    /// entries is a hostile batch (see `isAnchored`), and proves nothing.
    function verifyChain(bytes24 fromAcc, uint64 fromLastSeq, Batch[] calldata batches) external view returns (bool) {
        (bool ok, bytes24 acc, uint64 last) = replay(fromAcc, fromLastSeq, batches);
        return ok && isKnownState(acc, last);
    }

    /// @notice True iff `root` was anchored for exactly `firstSeq..lastSeq` and that batch is a
    /// plausible ledger batch: false for a batch ending at or past seq 2**62 or holding more than
    /// 2**20 entries (a hostile batch a leaked anchoring key can send; it proves no entry). The
    /// batches before a hostile one stay provable by replaying through it (`later`).
    /// @param prevAcc accumulator before this batch: GENESIS for the first batch, otherwise the
    ///        `accumulator` of the previous `Anchored` event.
    /// @param later every batch anchored after this one, in order, up to the head or a checkpoint.
    function isAnchored(bytes32 root, uint64 firstSeq, uint64 lastSeq, bytes24 prevAcc, Batch[] calldata later)
        external
        view
        returns (bool)
    {
        if (firstSeq == 0 || lastSeq < firstSeq || lastSeq >= IMPLAUSIBLE_SEQ || lastSeq - firstSeq >= MAX_BATCH_SIZE) {
            return false;
        }
        (bool ok, bytes24 acc, uint64 last) = replay(accumulate(prevAcc, root, firstSeq, lastSeq), lastSeq, later);
        return ok && isKnownState(acc, last);
    }
}
