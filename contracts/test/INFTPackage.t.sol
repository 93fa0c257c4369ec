// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Test} from "./utils/Test.sol";
import {INFTPackage} from "../src/INFTPackage.sol";
import {IERC721} from "@openzeppelin/contracts/token/ERC721/IERC721.sol";
import {IERC721Errors} from "@openzeppelin/contracts/interfaces/draft-IERC6093.sol";
import {IAccessControl} from "@openzeppelin/contracts/access/IAccessControl.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {Pausable} from "@openzeppelin/contracts/utils/Pausable.sol";

/// @dev Rejects ETH, to exercise WithdrawFailed.
contract RejectingReceiver {
    receive() external payable {
        revert("no thanks");
    }
}

/// @dev Contract without onERC721Received: it can still buy (the package uses _mint).
contract ContractBuyer {
    function buy(INFTPackage pkg, uint8 packageType) external payable returns (uint256) {
        return pkg.purchasePackage{value: msg.value}(packageType);
    }
}

contract INFTPackageTest is Test {
    INFTPackage internal pkg;

    address internal owner = address(0xA11CE);
    address internal operator = address(0x0FE7A708);
    address internal alice = address(0xA71CE0001);
    address internal bob = address(0xB0B0002);
    address internal stranger = address(0x57A4A6E7);

    uint8 internal constant BASIC = 1;
    uint8 internal constant PRO = 2;
    uint256 internal constant BASIC_PRICE = 0.01 ether;
    uint256 internal constant BASIC_CREDITS = 100;
    uint256 internal constant PRO_PRICE = 0.05 ether;
    uint256 internal constant PRO_CREDITS = 1000;
    uint256 internal constant CREDIT_PRICE = 0.0001 ether;

    bytes32 internal constant ADMIN = 0x00;

    function setUp() public {
        pkg = new INFTPackage(owner);
        bytes32 operatorRole = pkg.OPERATOR_ROLE();
        vm.startPrank(owner);
        pkg.setPackageType(BASIC, BASIC_PRICE, BASIC_CREDITS, true);
        pkg.setPackageType(PRO, PRO_PRICE, PRO_CREDITS, true);
        pkg.setCreditPrice(CREDIT_PRICE);
        pkg.grantRole(operatorRole, operator);
        vm.stopPrank();
        vm.deal(alice, 100 ether);
        vm.deal(bob, 100 ether);
        vm.deal(stranger, 100 ether);
    }

    function _buy(address who, uint8 packageType, uint256 price) internal returns (uint256 tokenId) {
        vm.prank(who);
        tokenId = pkg.purchasePackage{value: price}(packageType);
    }

    // ------------------------------------------------------------ deployment

    function test_constructor_setsNameSymbolOwnerAndRoles() public view {
        assertEq(pkg.name(), "INFT Package", "name");
        assertEq(pkg.symbol(), "INFTP", "symbol");
        assertEq(pkg.owner(), owner, "owner");
        assertTrue(pkg.hasRole(ADMIN, owner), "owner is admin");
        assertFalse(pkg.hasRole(pkg.OPERATOR_ROLE(), owner), "owner is not operator by default");
        assertEq(pkg.getRoleAdmin(pkg.OPERATOR_ROLE()), ADMIN, "operator role admin");
        assertEq(pkg.OPERATOR_ROLE(), keccak256("OPERATOR_ROLE"), "operator role id");
        assertEq(pkg.MAX_PROMPT_BYTES(), 4000, "max prompt");
        assertFalse(pkg.paused(), "not paused");
        assertEq(pkg.lastTokenId(), 0, "no tokens");
        assertEq(pkg.lastRequestId(), 0, "no requests");
    }

    function test_constructor_revertsOnZeroOwner() public {
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableInvalidOwner.selector, address(0)));
        new INFTPackage(address(0));
    }

    function test_supportsInterface() public view {
        assertTrue(pkg.supportsInterface(0x01ffc9a7), "ERC165");
        assertTrue(pkg.supportsInterface(0x80ac58cd), "ERC721");
        assertTrue(pkg.supportsInterface(0x5b5e139f), "ERC721Metadata");
        assertTrue(pkg.supportsInterface(type(IAccessControl).interfaceId), "AccessControl");
        assertFalse(pkg.supportsInterface(0xffffffff), "0xffffffff");
        assertFalse(pkg.supportsInterface(0x12345678), "random");
    }

    /// The Python indexer decodes these exact signatures.
    function test_eventSignaturesAreFrozen() public pure {
        assertEq(
            INFTPackage.PackageTypeSet.selector,
            keccak256("PackageTypeSet(uint8,uint256,uint256,bool)"),
            "PackageTypeSet"
        );
        assertEq(INFTPackage.CreditPriceSet.selector, keccak256("CreditPriceSet(uint256)"), "CreditPriceSet");
        assertEq(
            INFTPackage.PackagePurchased.selector,
            keccak256("PackagePurchased(uint256,address,uint8,uint256,uint256)"),
            "PackagePurchased"
        );
        assertEq(INFTPackage.CreditsAdded.selector, keccak256("CreditsAdded(uint256,address,uint256)"), "CreditsAdded");
        assertEq(
            INFTPackage.GenerationRequested.selector,
            keccak256("GenerationRequested(uint256,uint256,address,uint8,string)"),
            "GenerationRequested"
        );
        assertEq(
            INFTPackage.AgentMetadataUpdated.selector,
            keccak256("AgentMetadataUpdated(uint256,string,bytes32)"),
            "AgentMetadataUpdated"
        );
        assertEq(INFTPackage.Withdrawn.selector, keccak256("Withdrawn(address,uint256)"), "Withdrawn");
    }

    function test_rejectsPlainEtherTransfers() public {
        vm.prank(alice);
        (bool ok,) = address(pkg).call{value: 1 ether}("");
        assertFalse(ok, "plain transfer accepted");
        assertEq(address(pkg).balance, 0, "balance");
    }

    // --------------------------------------------------------- package types

    function test_setPackageType_storesAndEmits() public {
        vm.expectEmit(true, true, true, true, address(pkg));
        emit INFTPackage.PackageTypeSet(7, 3 ether, 42, true);
        vm.prank(owner);
        pkg.setPackageType(7, 3 ether, 42, true);
        (uint256 price, uint256 credits, bool active) = pkg.packageTypes(7);
        assertEq(price, 3 ether, "price");
        assertEq(credits, 42, "credits");
        assertTrue(active, "active");
    }

    function test_setPackageType_updatesAndDeactivates() public {
        vm.expectEmit(true, true, true, true, address(pkg));
        emit INFTPackage.PackageTypeSet(BASIC, 2 ether, 5, false);
        vm.prank(owner);
        pkg.setPackageType(BASIC, 2 ether, 5, false);
        (uint256 price, uint256 credits, bool active) = pkg.packageTypes(BASIC);
        assertEq(price, 2 ether, "price");
        assertEq(credits, 5, "credits");
        assertFalse(active, "inactive");
    }

    function test_packageTypes_unsetIsZero() public view {
        (uint256 price, uint256 credits, bool active) = pkg.packageTypes(99);
        assertEq(price, 0, "price");
        assertEq(credits, 0, "credits");
        assertFalse(active, "active");
    }

    function test_setPackageType_revertsOnZeroCredits() public {
        vm.expectRevert(INFTPackage.ZeroCredits.selector);
        vm.prank(owner);
        pkg.setPackageType(3, 1 ether, 0, true);
    }

    function test_setPackageType_revertsForNonOwner() public {
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, stranger));
        vm.prank(stranger);
        pkg.setPackageType(3, 1 ether, 10, true);
    }

    function test_setPackageType_revertsForOperator() public {
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, operator));
        vm.prank(operator);
        pkg.setPackageType(3, 1 ether, 10, true);
    }

    // ----------------------------------------------------------- credit price

    function test_setCreditPrice_storesAndEmits() public {
        vm.expectEmit(true, true, true, true, address(pkg));
        emit INFTPackage.CreditPriceSet(123);
        vm.prank(owner);
        pkg.setCreditPrice(123);
        assertEq(pkg.creditPrice(), 123, "creditPrice");
    }

    function test_setCreditPrice_revertsOnZero() public {
        vm.expectRevert(INFTPackage.ZeroCreditPrice.selector);
        vm.prank(owner);
        pkg.setCreditPrice(0);
    }

    function test_setCreditPrice_revertsForNonOwner() public {
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, stranger));
        vm.prank(stranger);
        pkg.setCreditPrice(1);
    }

    // -------------------------------------------------------------- purchase

    function test_purchasePackage_mintsRecordsAndEmits() public {
        vm.expectEmit(true, true, true, true, address(pkg));
        emit IERC721.Transfer(address(0), alice, 1);
        vm.expectEmit(true, true, true, true, address(pkg));
        emit INFTPackage.PackagePurchased(1, alice, BASIC, BASIC_CREDITS, BASIC_PRICE);
        uint256 tokenId = _buy(alice, BASIC, BASIC_PRICE);

        assertEq(tokenId, 1, "first id");
        assertEq(pkg.ownerOf(1), alice, "owner");
        assertEq(pkg.balanceOf(alice), 1, "balance");
        assertEq(pkg.packageTypeOf(1), BASIC, "packageTypeOf");
        assertEq(pkg.creditsOf(1), BASIC_CREDITS, "creditsOf");
        assertEq(pkg.lastTokenId(), 1, "lastTokenId");
        assertEq(address(pkg).balance, BASIC_PRICE, "contract balance");
        assertEq(alice.balance, 100 ether - BASIC_PRICE, "alice paid");
    }

    function test_purchasePackage_idsIncrement() public {
        assertEq(_buy(alice, BASIC, BASIC_PRICE), 1, "id 1");
        vm.expectEmit(true, true, true, true, address(pkg));
        emit INFTPackage.PackagePurchased(2, bob, PRO, PRO_CREDITS, PRO_PRICE);
        assertEq(_buy(bob, PRO, PRO_PRICE), 2, "id 2");
        assertEq(_buy(alice, PRO, PRO_PRICE), 3, "id 3");
        assertEq(pkg.packageTypeOf(2), PRO, "type 2");
        assertEq(pkg.creditsOf(3), PRO_CREDITS, "credits 3");
        assertEq(pkg.balanceOf(alice), 2, "alice has 2");
        assertEq(address(pkg).balance, BASIC_PRICE + 2 * PRO_PRICE, "contract balance");
    }

    function test_purchasePackage_freePackage() public {
        vm.prank(owner);
        pkg.setPackageType(9, 0, 5, true);
        uint256 tokenId = _buy(alice, 9, 0);
        assertEq(pkg.creditsOf(tokenId), 5, "credits");
    }

    function test_purchasePackage_byContractWithoutReceiverHook() public {
        ContractBuyer buyer = new ContractBuyer();
        uint256 tokenId = buyer.buy{value: BASIC_PRICE}(pkg, BASIC);
        assertEq(pkg.ownerOf(tokenId), address(buyer), "contract owns token");
    }

    function test_purchasePackage_snapshotOfTypeAtPurchase() public {
        uint256 tokenId = _buy(alice, BASIC, BASIC_PRICE);
        vm.prank(owner);
        pkg.setPackageType(BASIC, BASIC_PRICE, 1, true);
        assertEq(pkg.creditsOf(tokenId), BASIC_CREDITS, "credits unchanged by later type edit");
    }

    function test_purchasePackage_revertsOnUnknownType() public {
        vm.expectRevert(abi.encodeWithSelector(INFTPackage.UnknownPackageType.selector, uint8(42)));
        _buy(alice, 42, 0);
    }

    function test_purchasePackage_revertsOnInactiveType() public {
        vm.prank(owner);
        pkg.setPackageType(BASIC, BASIC_PRICE, BASIC_CREDITS, false);
        vm.expectRevert(abi.encodeWithSelector(INFTPackage.PackageTypeInactive.selector, BASIC));
        _buy(alice, BASIC, BASIC_PRICE);
    }

    function test_purchasePackage_revertsOnUnderpayment() public {
        vm.expectRevert(abi.encodeWithSelector(INFTPackage.WrongPayment.selector, BASIC_PRICE, BASIC_PRICE - 1));
        _buy(alice, BASIC, BASIC_PRICE - 1);
    }

    function test_purchasePackage_revertsOnOverpayment() public {
        vm.expectRevert(abi.encodeWithSelector(INFTPackage.WrongPayment.selector, BASIC_PRICE, BASIC_PRICE + 1));
        _buy(alice, BASIC, BASIC_PRICE + 1);
    }

    function test_purchasePackage_revertsOnZeroPayment() public {
        vm.expectRevert(abi.encodeWithSelector(INFTPackage.WrongPayment.selector, BASIC_PRICE, 0));
        _buy(alice, BASIC, 0);
    }

    function test_purchasePackage_revertsWhenPaused() public {
        vm.prank(owner);
        pkg.pause();
        vm.expectRevert(Pausable.EnforcedPause.selector);
        _buy(alice, BASIC, BASIC_PRICE);
    }

    function test_purchasePackage_worksAgainAfterUnpause() public {
        vm.startPrank(owner);
        pkg.pause();
        pkg.unpause();
        vm.stopPrank();
        assertEq(_buy(alice, BASIC, BASIC_PRICE), 1, "bought");
    }

    // ----------------------------------------------------------- top-ups

    function test_addCredits_addsAndEmits() public {
        uint256 tokenId = _buy(alice, BASIC, BASIC_PRICE);
        vm.expectEmit(true, true, true, true, address(pkg));
        emit INFTPackage.CreditsAdded(tokenId, alice, 25);
        vm.prank(alice);
        pkg.addCredits{value: 25 * CREDIT_PRICE}(tokenId);
        assertEq(pkg.creditsOf(tokenId), BASIC_CREDITS + 25, "credits");
        assertEq(address(pkg).balance, BASIC_PRICE + 25 * CREDIT_PRICE, "balance");
    }

    function test_addCredits_anyoneMayTopUp() public {
        uint256 tokenId = _buy(alice, BASIC, BASIC_PRICE);
        vm.expectEmit(true, true, true, true, address(pkg));
        emit INFTPackage.CreditsAdded(tokenId, stranger, 1);
        vm.prank(stranger);
        pkg.addCredits{value: CREDIT_PRICE}(tokenId);
        vm.prank(bob);
        pkg.addCredits{value: 3 * CREDIT_PRICE}(tokenId);
        assertEq(pkg.creditsOf(tokenId), BASIC_CREDITS + 4, "credits");
        assertEq(pkg.ownerOf(tokenId), alice, "owner unchanged");
    }

    function test_addCredits_usesCurrentCreditPrice() public {
        uint256 tokenId = _buy(alice, BASIC, BASIC_PRICE);
        vm.prank(owner);
        pkg.setCreditPrice(1 ether);
        vm.prank(alice);
        pkg.addCredits{value: 2 ether}(tokenId);
        assertEq(pkg.creditsOf(tokenId), BASIC_CREDITS + 2, "credits");
    }

    function test_addCredits_revertsForNonexistentToken() public {
        vm.expectRevert(abi.encodeWithSelector(IERC721Errors.ERC721NonexistentToken.selector, uint256(5)));
        vm.prank(alice);
        pkg.addCredits{value: CREDIT_PRICE}(5);
    }

    function test_addCredits_revertsWhenCreditPriceNotSet() public {
        INFTPackage fresh = new INFTPackage(owner);
        vm.prank(owner);
        fresh.setPackageType(BASIC, BASIC_PRICE, BASIC_CREDITS, true);
        vm.prank(alice);
        uint256 tokenId = fresh.purchasePackage{value: BASIC_PRICE}(BASIC);
        vm.expectRevert(INFTPackage.CreditPriceNotSet.selector);
        vm.prank(alice);
        fresh.addCredits{value: 1 ether}(tokenId);
    }

    function test_addCredits_revertsOnZeroValue() public {
        uint256 tokenId = _buy(alice, BASIC, BASIC_PRICE);
        vm.expectRevert(abi.encodeWithSelector(INFTPackage.WrongPayment.selector, CREDIT_PRICE, 0));
        vm.prank(alice);
        pkg.addCredits{value: 0}(tokenId);
    }

    function test_addCredits_revertsOnNonMultiple() public {
        uint256 tokenId = _buy(alice, BASIC, BASIC_PRICE);
        uint256 sent = 3 * CREDIT_PRICE + 7;
        vm.expectRevert(abi.encodeWithSelector(INFTPackage.WrongPayment.selector, 3 * CREDIT_PRICE, sent));
        vm.prank(alice);
        pkg.addCredits{value: sent}(tokenId);
    }

    function test_addCredits_revertsOnLessThanOneCredit() public {
        uint256 tokenId = _buy(alice, BASIC, BASIC_PRICE);
        vm.expectRevert(abi.encodeWithSelector(INFTPackage.WrongPayment.selector, CREDIT_PRICE, CREDIT_PRICE - 1));
        vm.prank(alice);
        pkg.addCredits{value: CREDIT_PRICE - 1}(tokenId);
    }

    function test_addCredits_revertsWhenPaused() public {
        uint256 tokenId = _buy(alice, BASIC, BASIC_PRICE);
        vm.prank(owner);
        pkg.pause();
        vm.expectRevert(Pausable.EnforcedPause.selector);
        vm.prank(alice);
        pkg.addCredits{value: CREDIT_PRICE}(tokenId);
    }

    // ------------------------------------------------------- generation requests

    function test_requestGeneration_textAndImage() public {
        uint256 tokenId = _buy(alice, BASIC, BASIC_PRICE);
        vm.expectEmit(true, true, true, true, address(pkg));
        emit INFTPackage.GenerationRequested(tokenId, 1, alice, 0, "a haiku about ledgers");
        vm.prank(alice);
        assertEq(pkg.requestGeneration(tokenId, 0, "a haiku about ledgers"), 1, "request 1");

        vm.expectEmit(true, true, true, true, address(pkg));
        emit INFTPackage.GenerationRequested(tokenId, 2, alice, 1, "a red fox");
        vm.prank(alice);
        assertEq(pkg.requestGeneration(tokenId, 1, "a red fox"), 2, "request 2");
        assertEq(pkg.lastRequestId(), 2, "lastRequestId");
    }

    function test_requestGeneration_idIsGlobalAcrossTokens() public {
        uint256 a = _buy(alice, BASIC, BASIC_PRICE);
        uint256 b = _buy(bob, PRO, PRO_PRICE);
        vm.prank(alice);
        assertEq(pkg.requestGeneration(a, 0, "x"), 1, "alice 1");
        vm.prank(bob);
        assertEq(pkg.requestGeneration(b, 0, "y"), 2, "bob 2");
        vm.prank(alice);
        assertEq(pkg.requestGeneration(a, 1, "z"), 3, "alice 3");
    }

    function test_requestGeneration_acceptsMaxLengthPrompt() public {
        uint256 tokenId = _buy(alice, BASIC, BASIC_PRICE);
        string memory prompt = string(_bytesOf(4000));
        vm.prank(alice);
        assertEq(pkg.requestGeneration(tokenId, 0, prompt), 1, "accepted");
    }

    function test_requestGeneration_newOwnerAfterTransfer() public {
        uint256 tokenId = _buy(alice, BASIC, BASIC_PRICE);
        vm.prank(alice);
        pkg.transferFrom(alice, bob, tokenId);

        vm.expectRevert(abi.encodeWithSelector(INFTPackage.NotTokenOwner.selector, tokenId, alice));
        vm.prank(alice);
        pkg.requestGeneration(tokenId, 0, "mine?");

        vm.expectEmit(true, true, true, true, address(pkg));
        emit INFTPackage.GenerationRequested(tokenId, 1, bob, 0, "mine now");
        vm.prank(bob);
        pkg.requestGeneration(tokenId, 0, "mine now");
    }

    function test_requestGeneration_revertsForNonOwner() public {
        uint256 tokenId = _buy(alice, BASIC, BASIC_PRICE);
        vm.expectRevert(abi.encodeWithSelector(INFTPackage.NotTokenOwner.selector, tokenId, stranger));
        vm.prank(stranger);
        pkg.requestGeneration(tokenId, 0, "hello");
    }

    function test_requestGeneration_revertsForApprovedNonOwner() public {
        uint256 tokenId = _buy(alice, BASIC, BASIC_PRICE);
        vm.prank(alice);
        pkg.approve(bob, tokenId);
        vm.expectRevert(abi.encodeWithSelector(INFTPackage.NotTokenOwner.selector, tokenId, bob));
        vm.prank(bob);
        pkg.requestGeneration(tokenId, 0, "hello");
    }

    function test_requestGeneration_revertsForOperatorAndContractOwner() public {
        uint256 tokenId = _buy(alice, BASIC, BASIC_PRICE);
        vm.expectRevert(abi.encodeWithSelector(INFTPackage.NotTokenOwner.selector, tokenId, operator));
        vm.prank(operator);
        pkg.requestGeneration(tokenId, 0, "hello");
        vm.expectRevert(abi.encodeWithSelector(INFTPackage.NotTokenOwner.selector, tokenId, owner));
        vm.prank(owner);
        pkg.requestGeneration(tokenId, 0, "hello");
    }

    function test_requestGeneration_revertsForNonexistentToken() public {
        vm.expectRevert(abi.encodeWithSelector(IERC721Errors.ERC721NonexistentToken.selector, uint256(77)));
        vm.prank(alice);
        pkg.requestGeneration(77, 0, "hello");
    }

    function test_requestGeneration_revertsOnInvalidKind() public {
        uint256 tokenId = _buy(alice, BASIC, BASIC_PRICE);
        vm.expectRevert(abi.encodeWithSelector(INFTPackage.InvalidKind.selector, uint8(2)));
        vm.prank(alice);
        pkg.requestGeneration(tokenId, 2, "hello");
        vm.expectRevert(abi.encodeWithSelector(INFTPackage.InvalidKind.selector, uint8(255)));
        vm.prank(alice);
        pkg.requestGeneration(tokenId, 255, "hello");
    }

    function test_requestGeneration_revertsOnEmptyPrompt() public {
        uint256 tokenId = _buy(alice, BASIC, BASIC_PRICE);
        vm.expectRevert(INFTPackage.EmptyPrompt.selector);
        vm.prank(alice);
        pkg.requestGeneration(tokenId, 0, "");
    }

    function test_requestGeneration_revertsOnTooLongPrompt() public {
        uint256 tokenId = _buy(alice, BASIC, BASIC_PRICE);
        string memory prompt = string(_bytesOf(4001));
        vm.expectRevert(abi.encodeWithSelector(INFTPackage.PromptTooLong.selector, uint256(4001), uint256(4000)));
        vm.prank(alice);
        pkg.requestGeneration(tokenId, 0, prompt);
    }

    function test_requestGeneration_promptLengthIsInBytes() public {
        uint256 tokenId = _buy(alice, BASIC, BASIC_PRICE);
        // 1334 three-byte characters = 4002 bytes, though only 1334 characters.
        bytes memory three = bytes(unicode"€");
        bytes memory p = new bytes(1334 * 3);
        for (uint256 i = 0; i < p.length; i++) {
            p[i] = three[i % 3];
        }
        vm.expectRevert(abi.encodeWithSelector(INFTPackage.PromptTooLong.selector, uint256(4002), uint256(4000)));
        vm.prank(alice);
        pkg.requestGeneration(tokenId, 0, string(p));
    }

    function test_requestGeneration_revertsWhenPaused() public {
        uint256 tokenId = _buy(alice, BASIC, BASIC_PRICE);
        vm.prank(owner);
        pkg.pause();
        vm.expectRevert(Pausable.EnforcedPause.selector);
        vm.prank(alice);
        pkg.requestGeneration(tokenId, 0, "hello");
    }

    // ----------------------------------------------------------- agent metadata

    function test_setAgentMetadata_storesAndEmits() public {
        uint256 tokenId = _buy(alice, BASIC, BASIC_PRICE);
        bytes32 h = keccak256("state v1");
        vm.expectEmit(true, true, true, true, address(pkg));
        emit INFTPackage.AgentMetadataUpdated(tokenId, "ipfs://agent/1", h);
        vm.prank(operator);
        pkg.setAgentMetadata(tokenId, "ipfs://agent/1", h);

        (string memory uri, bytes32 stateHash) = pkg.agentMetadata(tokenId);
        assertEq(uri, "ipfs://agent/1", "uri");
        assertEq(stateHash, h, "stateHash");
        assertEq(pkg.tokenURI(tokenId), "ipfs://agent/1", "tokenURI follows metadata");

        bytes32 h2 = keccak256("state v2");
        vm.prank(operator);
        pkg.setAgentMetadata(tokenId, "ipfs://agent/1b", h2);
        (uri, stateHash) = pkg.agentMetadata(tokenId);
        assertEq(uri, "ipfs://agent/1b", "uri v2");
        assertEq(stateHash, h2, "stateHash v2");
    }

    function test_agentMetadata_emptyByDefault() public {
        uint256 tokenId = _buy(alice, BASIC, BASIC_PRICE);
        (string memory uri, bytes32 stateHash) = pkg.agentMetadata(tokenId);
        assertEq(uri, "", "uri");
        assertEq(stateHash, bytes32(0), "stateHash");
        assertEq(pkg.tokenURI(tokenId), "", "tokenURI");
    }

    function test_tokenURI_revertsForNonexistentToken() public {
        vm.expectRevert(abi.encodeWithSelector(IERC721Errors.ERC721NonexistentToken.selector, uint256(3)));
        pkg.tokenURI(3);
    }

    function test_setAgentMetadata_revertsForNonOperator() public {
        uint256 tokenId = _buy(alice, BASIC, BASIC_PRICE);
        bytes32 role = pkg.OPERATOR_ROLE();
        vm.expectRevert(abi.encodeWithSelector(IAccessControl.AccessControlUnauthorizedAccount.selector, alice, role));
        vm.prank(alice);
        pkg.setAgentMetadata(tokenId, "x", bytes32(0));
        // The owner/admin needs the role too.
        vm.expectRevert(abi.encodeWithSelector(IAccessControl.AccessControlUnauthorizedAccount.selector, owner, role));
        vm.prank(owner);
        pkg.setAgentMetadata(tokenId, "x", bytes32(0));
    }

    function test_setAgentMetadata_revertsForNonexistentToken() public {
        vm.expectRevert(abi.encodeWithSelector(IERC721Errors.ERC721NonexistentToken.selector, uint256(9)));
        vm.prank(operator);
        pkg.setAgentMetadata(9, "x", bytes32(0));
    }

    function test_setAgentMetadata_worksWhilePaused() public {
        uint256 tokenId = _buy(alice, BASIC, BASIC_PRICE);
        vm.prank(owner);
        pkg.pause();
        vm.prank(operator);
        pkg.setAgentMetadata(tokenId, "u", bytes32(uint256(1)));
        (string memory uri,) = pkg.agentMetadata(tokenId);
        assertEq(uri, "u", "uri");
    }

    function test_operatorRole_grantAndRevoke() public {
        bytes32 role = pkg.OPERATOR_ROLE();
        uint256 tokenId = _buy(alice, BASIC, BASIC_PRICE);
        vm.prank(owner);
        pkg.revokeRole(role, operator);
        vm.expectRevert(
            abi.encodeWithSelector(IAccessControl.AccessControlUnauthorizedAccount.selector, operator, role)
        );
        vm.prank(operator);
        pkg.setAgentMetadata(tokenId, "x", bytes32(0));
    }

    function test_operatorRole_onlyAdminCanGrant() public {
        bytes32 role = pkg.OPERATOR_ROLE();
        vm.expectRevert(
            abi.encodeWithSelector(IAccessControl.AccessControlUnauthorizedAccount.selector, operator, ADMIN)
        );
        vm.prank(operator);
        pkg.grantRole(role, stranger);
    }

    // ------------------------------------------------------------------ pause

    function test_pause_unpause_emitAndToggle() public {
        vm.expectEmit(true, true, true, true, address(pkg));
        emit Pausable.Paused(owner);
        vm.prank(owner);
        pkg.pause();
        assertTrue(pkg.paused(), "paused");

        vm.expectEmit(true, true, true, true, address(pkg));
        emit Pausable.Unpaused(owner);
        vm.prank(owner);
        pkg.unpause();
        assertFalse(pkg.paused(), "unpaused");
    }

    function test_pause_revertsForNonOwner() public {
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, operator));
        vm.prank(operator);
        pkg.pause();
    }

    function test_unpause_revertsForNonOwner() public {
        vm.prank(owner);
        pkg.pause();
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, stranger));
        vm.prank(stranger);
        pkg.unpause();
    }

    function test_pause_revertsWhenAlreadyPaused() public {
        vm.startPrank(owner);
        pkg.pause();
        vm.expectRevert(Pausable.EnforcedPause.selector);
        pkg.pause();
        vm.stopPrank();
    }

    function test_unpause_revertsWhenNotPaused() public {
        vm.expectRevert(Pausable.ExpectedPause.selector);
        vm.prank(owner);
        pkg.unpause();
    }

    function test_transfersStillWorkWhilePaused() public {
        uint256 tokenId = _buy(alice, BASIC, BASIC_PRICE);
        vm.prank(owner);
        pkg.pause();
        vm.prank(alice);
        pkg.transferFrom(alice, bob, tokenId);
        assertEq(pkg.ownerOf(tokenId), bob, "moved");
    }

    // --------------------------------------------------------------- withdraw

    function test_withdraw_sendsWholeBalanceAndEmits() public {
        _buy(alice, BASIC, BASIC_PRICE);
        _buy(bob, PRO, PRO_PRICE);
        uint256 total = BASIC_PRICE + PRO_PRICE;
        address payable treasury = payable(address(0x7EA5));
        vm.expectEmit(true, true, true, true, address(pkg));
        emit INFTPackage.Withdrawn(treasury, total);
        vm.prank(owner);
        pkg.withdraw(treasury);
        assertEq(treasury.balance, total, "treasury got all");
        assertEq(address(pkg).balance, 0, "contract empty");
    }

    function test_withdraw_emptyBalance() public {
        address payable treasury = payable(address(0x7EA5));
        vm.expectEmit(true, true, true, true, address(pkg));
        emit INFTPackage.Withdrawn(treasury, 0);
        vm.prank(owner);
        pkg.withdraw(treasury);
    }

    function test_withdraw_revertsOnZeroAddress() public {
        _buy(alice, BASIC, BASIC_PRICE);
        vm.expectRevert(INFTPackage.ZeroAddress.selector);
        vm.prank(owner);
        pkg.withdraw(payable(address(0)));
    }

    function test_withdraw_revertsWhenReceiverRejects() public {
        _buy(alice, BASIC, BASIC_PRICE);
        RejectingReceiver r = new RejectingReceiver();
        vm.expectRevert(INFTPackage.WithdrawFailed.selector);
        vm.prank(owner);
        pkg.withdraw(payable(address(r)));
        assertEq(address(pkg).balance, BASIC_PRICE, "balance kept");
    }

    function test_withdraw_revertsForNonOwner() public {
        _buy(alice, BASIC, BASIC_PRICE);
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, alice));
        vm.prank(alice);
        pkg.withdraw(payable(alice));
    }

    // ------------------------------------------------------------- ownership

    function test_transferOwnership_movesOnlyOwnerPowers() public {
        vm.prank(owner);
        pkg.transferOwnership(bob);
        assertEq(pkg.owner(), bob, "new owner");

        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, owner));
        vm.prank(owner);
        pkg.setCreditPrice(5);

        vm.prank(bob);
        pkg.setCreditPrice(5);
        assertEq(pkg.creditPrice(), 5, "set by new owner");
    }

    // ---------------------------------------------------------------- helpers

    function _bytesOf(uint256 n) internal pure returns (bytes memory b) {
        b = new bytes(n);
        for (uint256 i = 0; i < n; i++) {
            b[i] = "a";
        }
    }
}
