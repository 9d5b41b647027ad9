// SPDX-License-Identifier: AGPL-3.0-or-later
pragma solidity 0.8.30;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";

/// @title Fully on-chain mutual credit: the alternative to Ayni's off-chain ledger.
/// @notice Every account's balance in every currency lives on chain. Credit is created by
/// payment: a payer's balance may go down to `-creditLimit`, the payee's up to `ceiling`, both
/// set per account and currency by the cooperative (TREASURER_ROLE). Balances are zero-sum by
/// construction (every transfer debits exactly what it credits). Used by `ayni cost-report` to
/// measure what running the ledger itself on chain would cost; see docs/costs.md.
/// @dev One storage slot per (account, currency): balance, limit, ceiling and status packed, so a
/// transfer touches exactly two slots. Opening an account writes the slot non-zero (status), so
/// every later transfer pays the cheap non-zero -> non-zero SSTORE, to a new member too.
/// Two ways to pay: `transfer` (the payer sends the transaction and pays gas in ETH) and
/// `transferWithSig` (anyone relays a payer's EIP-712 Transfer: Ayni's type string, but a domain
/// that adds `verifyingContract`, so a signature is good for this one deployment only and an
/// off-chain Ayni signature, whose domain has no contract, can never be replayed here).
/// An account's positions all share one status; a currency added later is opened for existing
/// members by calling `openAccount` again. Closing is final, as in Ayni's rules.
contract MutualCredit is AccessControl {
    bytes32 public constant TREASURER_ROLE = keccak256("TREASURER_ROLE");

    uint8 internal constant NONE = 0;
    uint8 internal constant ACTIVE = 1;
    uint8 internal constant FROZEN = 2;
    uint8 internal constant CLOSED = 3;
    /// @notice `ceiling` value meaning "no ceiling".
    uint64 public constant NO_CEILING = type(uint64).max;
    uint256 internal constant MAX_CURRENCIES = 8;

    /// @dev 96 + 64 + 64 + 8 = 232 bits: one slot. A balance never goes below -(2**64 - 1) (limits
    /// are uint64 and every debit is checked against the limit). Upwards it is bounded only by the
    /// sum of the others' debts (zero-sum), which passes 2**95 only if more than 2**31 accounts owe
    /// the maximum; checked arithmetic then reverts the transfer, it never wraps.
    struct Position {
        int96 balance;
        uint64 creditLimit;
        uint64 ceiling;
        uint8 status;
    }

    struct CurrencyDefaults {
        bool exists;
        uint64 creditLimit;
        uint64 ceiling;
    }

    bytes32 private constant DOMAIN_TYPEHASH =
        keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract,bytes32 salt)");
    bytes32 private constant TRANSFER_TYPEHASH = keccak256(
        "Transfer(address payer,address payee,string currency,uint256 amount,uint256 nonce,"
        "uint64 validUntil,bytes32 memoHash,bytes32 requestId)"
    );

    /// @notice The community id (EIP-712 salt), as in Ayni's off-chain ledger.
    bytes32 public immutable COMMUNITY;
    bytes32 private immutable _domainSeparator;
    uint256 private immutable _chainId;

    mapping(address account => mapping(bytes12 currency => Position)) private _positions;
    mapping(bytes12 currency => CurrencyDefaults) public currencyDefaults;
    bytes12[] private _currencies;
    /// @dev Unordered nonces as a bitmap (as Uniswap's Permit2): word = nonce >> 8, bit = nonce & 255.
    mapping(address payer => mapping(uint256 word => uint256 bits)) public nonceBitmap;

    event Transfer(address indexed payer, address indexed payee, bytes12 indexed currency, uint256 amount);
    event CurrencyAdded(bytes12 indexed currency, uint64 creditLimit, uint64 ceiling);
    event AccountOpened(address indexed account);
    event LimitSet(address indexed account, bytes12 indexed currency, uint64 creditLimit, uint64 ceiling);
    event StatusSet(address indexed account, uint8 status);

    error UnknownCurrency(bytes12 currency);
    error TooManyCurrencies();
    error BadAmount(uint256 amount);
    error SelfTransfer();
    error NotActive(address account);
    error OverCreditLimit(address payer, int256 balanceAfter, uint64 creditLimit);
    error OverCeiling(address payee, int256 balanceAfter, uint64 ceiling);
    error AlreadyOpen(address account);
    error NotOpen(address account);
    error BadStatus(uint8 status);
    error AccountClosed(address account);
    error NonZeroBalance(address account, bytes12 currency);
    error BadSignature();
    error Expired(uint64 validUntil);
    error NonceUsed(address payer, uint256 nonce);

    constructor(address admin, bytes32 community) {
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(TREASURER_ROLE, admin);
        COMMUNITY = community;
        _chainId = block.chainid;
        _domainSeparator = _separator(block.chainid, community);
    }

    // ------------------------------------------------------------------ payments

    /// @notice Pay `amount` minor units of `currency` from the sender to `payee`.
    function transfer(address payee, bytes12 currency, uint256 amount) external {
        _transfer(msg.sender, payee, currency, amount);
    }

    /// @notice Relay a payment the payer signed off chain (EIP-712, Ayni's Transfer type, this
    /// contract's domain). The relayer pays the gas; each nonce works once.
    function transferWithSig(
        address payer,
        address payee,
        string calldata currency,
        uint256 amount,
        uint256 nonce,
        uint64 validUntil,
        bytes32 memoHash,
        bytes32 requestId,
        bytes calldata signature
    ) external {
        if (block.timestamp > validUntil) revert Expired(validUntil);
        bytes32 structHash = keccak256(
            abi.encode(
                TRANSFER_TYPEHASH, payer, payee, keccak256(bytes(currency)), amount, nonce, validUntil, memoHash, requestId
            )
        );
        (address signer, ECDSA.RecoverError err,) = ECDSA.tryRecover(_hashTyped(structHash), signature);
        if (err != ECDSA.RecoverError.NoError || signer != payer) revert BadSignature();
        _useNonce(payer, nonce);
        _transfer(payer, payee, _code(currency), amount);
    }

    function _useNonce(address payer, uint256 nonce) private {
        uint256 bit = 1 << (nonce & 255);
        uint256 bits = nonceBitmap[payer][nonce >> 8];
        if (bits & bit != 0) revert NonceUsed(payer, nonce);
        nonceBitmap[payer][nonce >> 8] = bits | bit;
    }

    function _transfer(address payer, address payee, bytes12 currency, uint256 amount) private {
        if (amount == 0 || amount > type(uint64).max) revert BadAmount(amount);
        if (payer == payee) revert SelfTransfer();
        Position storage from = _positions[payer][currency];
        Position storage to = _positions[payee][currency];
        Position memory f = from;
        Position memory t = to;
        if (f.status != ACTIVE) revert NotActive(payer);
        if (t.status != ACTIVE) revert NotActive(payee);
        // amount < 2**64 and balances stay far inside int96 (see Position); checked arithmetic
        // reverts rather than wraps if they ever did not
        int96 fb = f.balance - int96(uint96(amount));
        int96 tb = t.balance + int96(uint96(amount));
        if (fb < -int96(uint96(f.creditLimit))) revert OverCreditLimit(payer, fb, f.creditLimit);
        if (t.ceiling != NO_CEILING && tb > int96(uint96(t.ceiling))) revert OverCeiling(payee, tb, t.ceiling);
        from.balance = fb;
        to.balance = tb;
        emit Transfer(payer, payee, currency, amount);
    }

    // ------------------------------------------------------------------ the cooperative's role

    /// @notice Add a currency with the limits new accounts get (at most 8 currencies).
    function addCurrency(bytes12 currency, uint64 creditLimit, uint64 ceiling) external onlyRole(TREASURER_ROLE) {
        if (currency == bytes12(0) || currencyDefaults[currency].exists) revert UnknownCurrency(currency);
        if (_currencies.length >= MAX_CURRENCIES) revert TooManyCurrencies();
        currencyDefaults[currency] = CurrencyDefaults(true, creditLimit, ceiling);
        _currencies.push(currency);
        emit CurrencyAdded(currency, creditLimit, ceiling);
    }

    /// @notice Open `account` in every currency with the default limits. Called again after a
    /// currency was added, it opens the currencies still missing, with the account's current status
    /// (a frozen member stays frozen). Refused if nothing is missing, or if the account is closed.
    function openAccount(address account) external onlyRole(TREASURER_ROLE) {
        uint8 status = _accountStatus(account);
        if (status == CLOSED) revert AccountClosed(account);
        if (status == NONE) status = ACTIVE;
        uint256 n = _currencies.length;
        bool opened;
        for (uint256 i = 0; i < n; ++i) {
            bytes12 c = _currencies[i];
            Position storage p = _positions[account][c];
            if (p.status != NONE) continue;
            CurrencyDefaults memory d = currencyDefaults[c];
            (p.creditLimit, p.ceiling, p.status) = (d.creditLimit, d.ceiling, status);
            opened = true;
        }
        if (!opened) revert AlreadyOpen(account);
        emit AccountOpened(account);
    }

    /// @notice Set an account's credit limit and ceiling (NO_CEILING for none) in one currency.
    /// A lower limit does not move the balance: it only stops further spending below it.
    function setLimit(address account, bytes12 currency, uint64 creditLimit, uint64 ceiling)
        external
        onlyRole(TREASURER_ROLE)
    {
        if (!currencyDefaults[currency].exists) revert UnknownCurrency(currency);
        Position storage p = _positions[account][currency];
        if (p.status == NONE) revert NotOpen(account);
        if (p.status == CLOSED) revert AccountClosed(account);
        (p.creditLimit, p.ceiling) = (creditLimit, ceiling);
        emit LimitSet(account, currency, creditLimit, ceiling);
    }

    /// @notice Freeze (2), unfreeze (1) or close (3) an account, in every currency. Closing needs
    /// zero balances and is final. A currency added after the account was opened is opened here
    /// with its defaults and the new status, so all positions keep one status; on closing it is
    /// left unopened (a closed account never opens again).
    function setStatus(address account, uint8 status) external onlyRole(TREASURER_ROLE) {
        if (status < ACTIVE || status > CLOSED) revert BadStatus(status);
        uint8 current = _accountStatus(account);
        if (current == NONE) revert NotOpen(account);
        if (current == CLOSED) revert AccountClosed(account);
        uint256 n = _currencies.length;
        for (uint256 i = 0; i < n; ++i) {
            bytes12 c = _currencies[i];
            Position storage p = _positions[account][c];
            if (p.status == NONE) {
                if (status == CLOSED) continue;
                CurrencyDefaults memory d = currencyDefaults[c];
                (p.creditLimit, p.ceiling) = (d.creditLimit, d.ceiling);
            } else if (status == CLOSED && p.balance != 0) {
                revert NonZeroBalance(account, c);
            }
            p.status = status;
        }
        emit StatusSet(account, status);
    }

    /// @dev The status shared by the account's open positions; NONE if it has none.
    function _accountStatus(address account) private view returns (uint8) {
        uint256 n = _currencies.length;
        for (uint256 i = 0; i < n; ++i) {
            uint8 s = _positions[account][_currencies[i]].status;
            if (s != NONE) return s;
        }
        return NONE;
    }

    // ------------------------------------------------------------------ reading

    function position(address account, bytes12 currency)
        external
        view
        returns (int256 balance, uint64 creditLimit, uint64 ceiling, uint8 status)
    {
        Position memory p = _positions[account][currency];
        return (p.balance, p.creditLimit, p.ceiling, p.status);
    }

    function balanceOf(address account, bytes12 currency) external view returns (int256) {
        return _positions[account][currency].balance;
    }

    function currencies() external view returns (bytes12[] memory) {
        return _currencies;
    }

    /// @notice The EIP-712 domain separator: {name "Ayni", version "1", chainId, verifyingContract:
    /// this contract, salt: the community id}. Ayni's off-chain domain has no verifyingContract, so
    /// the two never accept each other's signatures.
    function domainSeparator() public view returns (bytes32) {
        if (block.chainid == _chainId) return _domainSeparator;
        return _separator(block.chainid, COMMUNITY);
    }

    function _separator(uint256 chainId, bytes32 community) private view returns (bytes32) {
        return keccak256(
            abi.encode(DOMAIN_TYPEHASH, keccak256("Ayni"), keccak256("1"), chainId, address(this), community)
        );
    }

    function _hashTyped(bytes32 structHash) private view returns (bytes32) {
        return keccak256(abi.encodePacked("\x19\x01", domainSeparator(), structHash));
    }

    /// @dev Ayni currency codes are 2-12 upper-case letters/digits: left-aligned in a bytes12.
    function _code(string calldata currency) private pure returns (bytes12) {
        bytes calldata b = bytes(currency);
        if (b.length < 2 || b.length > 12) revert UnknownCurrency(bytes12(0));
        return bytes12(b);
    }
}
