// SPDX-License-Identifier: AGPL-3.0-or-later
pragma solidity 0.8.30;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @title Plain OpenZeppelin ERC-20: the baseline `ayni cost-report` compares with.
/// @notice A fixed supply minted once to `holder` (e.g. the cooperative's treasury), which
/// then distributes it. No credit: a member can only spend tokens already received, which is
/// what separates a token from mutual credit (docs/costs.md).
contract CommunityToken is ERC20 {
    constructor(string memory name_, string memory symbol_, address holder, uint256 supply) ERC20(name_, symbol_) {
        _mint(holder, supply);
    }

    /// @notice Whole units are cents, as Ayni's CRED.
    function decimals() public pure override returns (uint8) {
        return 2;
    }
}
