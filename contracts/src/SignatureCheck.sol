// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {IERC1271} from "@openzeppelin/contracts/interfaces/IERC1271.sol";

/// @title SignatureCheck
/// @notice Never deployed. `eth_call` of its creation code followed by
///         `abi.encode(signer, hash, signature)` answers one byte, 1 or 0: whether
///         `signature` is the signer's over `hash`, for a plain key (ecrecover), a deployed
///         contract account (EIP-1271 `isValidSignature`), or an account not deployed yet
///         (EIP-6492: the signature wraps its factory call, which runs first, inside the
///         call; nothing of it persists). Sign-in with a smart wallet checks this way.
contract SignatureCheck {
    /// @dev EIP-6492's suffix of a wrapped signature.
    bytes32 private constant WRAPPED = 0x6492649264926492649264926492649264926492649264926492649264926492;
    bytes4 private constant ERC1271_VALID = 0x1626ba7e;

    constructor(address signer, bytes32 hash, bytes memory signature) {
        bool valid = _check(signer, hash, signature);
        assembly {
            mstore(0, valid)
            return(31, 1)
        }
    }

    function _check(address signer, bytes32 hash, bytes memory signature) private returns (bool) {
        if (_isWrapped(signature)) {
            (address factory, bytes memory deploy, bytes memory inner) =
                abi.decode(_unwrap(signature), (address, bytes, bytes));
            if (signer.code.length == 0) {
                (bool deployed,) = factory.call(deploy);
                if (!deployed || signer.code.length == 0) return false;
            }
            return _accountSays(signer, hash, inner);
        }
        if (signer.code.length > 0) return _accountSays(signer, hash, signature);
        (address recovered, ECDSA.RecoverError failed,) = ECDSA.tryRecover(hash, signature);
        return failed == ECDSA.RecoverError.NoError && recovered == signer;
    }

    function _accountSays(address account, bytes32 hash, bytes memory signature) private view returns (bool) {
        (bool answered, bytes memory answer) =
            account.staticcall(abi.encodeCall(IERC1271.isValidSignature, (hash, signature)));
        return answered && answer.length >= 32 && abi.decode(answer, (bytes4)) == ERC1271_VALID;
    }

    function _isWrapped(bytes memory signature) private pure returns (bool) {
        if (signature.length < 32) return false;
        bytes32 tail;
        assembly {
            tail := mload(add(signature, mload(signature)))
        }
        return tail == WRAPPED;
    }

    function _unwrap(bytes memory signature) private pure returns (bytes memory inner) {
        inner = new bytes(signature.length - 32);
        for (uint256 i = 0; i < inner.length; i++) {
            inner[i] = signature[i];
        }
    }
}
