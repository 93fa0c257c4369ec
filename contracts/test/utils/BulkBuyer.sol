// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @dev The one INFTPackage function the bulk buyer calls.
interface IPackageSale {
    function purchasePackage(uint8 packageType) external payable returns (uint256 tokenId);
}

/// @title Bulk buyer, for the indexer benchmark (bench/backfill.py)
/// @notice Buys `n` packages of one type in one transaction, so a local chain gets many
///         events cheaply: each purchase emits Transfer and PackagePurchased. The tokens
///         belong to this contract. Not part of the product; never deployed outside a bench.
contract BulkBuyer {
    error WrongPayment(uint256 sent, uint256 n);

    /// @param package The INFTPackage to buy from.
    /// @param packageType The package type bought `n` times.
    /// @param n How many packages; `msg.value` must be `n` times the package price.
    function buy(address package, uint8 packageType, uint256 n) external payable {
        if (n == 0 || msg.value % n != 0) revert WrongPayment(msg.value, n);
        uint256 price = msg.value / n;
        IPackageSale sale = IPackageSale(package);
        for (uint256 i = 0; i < n; ++i) {
            sale.purchasePackage{value: price}(packageType);
        }
    }
}
