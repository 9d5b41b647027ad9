// SPDX-License-Identifier: AGPL-3.0-or-later
pragma solidity 0.8.30;

import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";

/// @notice Test-only: exposes OpenZeppelin's MerkleProof so Python and JS tests can check that
/// proofs made by ledger/core/merkle.py verify with the library contracts use on chain.
contract MerkleProofHarness {
    function verify(bytes32[] calldata proof, bytes32 root, bytes32 leaf) external pure returns (bool) {
        return MerkleProof.verify(proof, root, leaf);
    }

    function processProof(bytes32[] calldata proof, bytes32 leaf) external pure returns (bytes32) {
        return MerkleProof.processProof(proof, leaf);
    }

    /// @notice The StandardMerkleTree leaf for the ledger's leaf type (uint64 seq, bytes32 entryHash).
    function entryLeaf(uint64 seq, bytes32 entryHash) external pure returns (bytes32) {
        return keccak256(bytes.concat(keccak256(abi.encode(seq, entryHash))));
    }

    /// @notice Verify that entry (seq, entryHash) is a leaf of `root`.
    function verifyEntry(bytes32[] calldata proof, bytes32 root, uint64 seq, bytes32 entryHash)
        external
        pure
        returns (bool)
    {
        bytes32 leaf = keccak256(bytes.concat(keccak256(abi.encode(seq, entryHash))));
        return MerkleProof.verifyCalldata(proof, root, leaf);
    }
}
