// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Test} from "./utils/Test.sol";
import {SignatureCheck} from "../src/SignatureCheck.sol";
import {DevSmartAccount} from "../src/dev/DevSmartAccount.sol";
import {DevSmartAccountFactory} from "../src/dev/DevSmartAccountFactory.sol";
import {MessageHashUtils} from "@openzeppelin/contracts/utils/cryptography/MessageHashUtils.sol";

/// @dev SignatureCheck answers through the code it "deploys": one byte, 1 or 0.
contract SignatureCheckTest is Test {
    bytes32 internal constant WRAPPED = 0x6492649264926492649264926492649264926492649264926492649264926492;
    uint256 internal constant OWNER_KEY = 0xA11CE;
    uint256 internal constant OTHER_KEY = 0xB0B;
    bytes32 internal hash = MessageHashUtils.toEthSignedMessageHash(bytes("sign in to inftd"));
    DevSmartAccountFactory internal factory = new DevSmartAccountFactory();

    function _says(address signer, bytes memory signature) internal returns (bool) {
        bytes memory answer = address(new SignatureCheck(signer, hash, signature)).code;
        assertEq(answer.length, 1, "one byte");
        return answer[0] == 0x01;
    }

    function _signed(uint256 key) internal view returns (bytes memory) {
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(key, hash);
        return abi.encodePacked(r, s, v);
    }

    function _wrapped(address owner, bytes32 salt, bytes memory inner) internal view returns (bytes memory) {
        bytes memory deploy = abi.encodeCall(DevSmartAccountFactory.deploy, (owner, salt));
        return abi.encodePacked(abi.encode(address(factory), deploy, inner), WRAPPED);
    }

    function test_a_plain_key_s_signature() public {
        address owner = vm.addr(OWNER_KEY);
        assertTrue(_says(owner, _signed(OWNER_KEY)), "the owner's");
        assertFalse(_says(owner, _signed(OTHER_KEY)), "another key's");
        assertFalse(_says(owner, hex"1234"), "not a signature");
    }

    function test_a_deployed_account_s_signature_is_its_owner_s() public {
        DevSmartAccount account = factory.deploy(vm.addr(OWNER_KEY), bytes32(uint256(1)));
        assertTrue(_says(address(account), _signed(OWNER_KEY)), "its owner's");
        assertFalse(_says(address(account), _signed(OTHER_KEY)), "another key's");
    }

    function test_an_account_not_deployed_yet_signs_through_its_factory() public {
        address owner = vm.addr(OWNER_KEY);
        address other = vm.addr(OTHER_KEY);
        address seven = factory.addressOf(owner, bytes32(uint256(7)));
        assertEq(seven.code.length, 0, "not deployed");
        assertFalse(_says(seven, _signed(OWNER_KEY)), "unwrapped: no code to ask");
        address nine = factory.addressOf(owner, bytes32(uint256(9)));
        assertFalse(
            _says(nine, _wrapped(other, bytes32(uint256(9)), _signed(OWNER_KEY))),
            "a factory call making another account"
        );
        address ten = factory.addressOf(owner, bytes32(uint256(10)));
        assertFalse(_says(ten, _wrapped(owner, bytes32(uint256(10)), _signed(OTHER_KEY))), "another key's");
        address eight = factory.addressOf(owner, bytes32(uint256(8)));
        assertTrue(_says(eight, _wrapped(owner, bytes32(uint256(8)), _signed(OWNER_KEY))), "its owner's");
    }
}
