// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {DevSmartAccount} from "./DevSmartAccount.sol";

/// @title DevSmartAccountFactory
/// @notice Deploys DevSmartAccounts at addresses known before they exist (CREATE2), so a
///         wallet can sign in before its account is deployed (EIP-6492).
contract DevSmartAccountFactory {
    function deploy(address owner, bytes32 salt) external returns (DevSmartAccount account) {
        return new DevSmartAccount{salt: salt}(owner);
    }

    function addressOf(address owner, bytes32 salt) external view returns (address) {
        bytes32 code = keccak256(abi.encodePacked(type(DevSmartAccount).creationCode, abi.encode(owner)));
        return address(uint160(uint256(keccak256(abi.encodePacked(bytes1(0xff), address(this), salt, code)))));
    }
}
