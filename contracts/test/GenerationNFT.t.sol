// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Test} from "./utils/Test.sol";
import {INFTPackage} from "../src/INFTPackage.sol";
import {GenerationNFT} from "../src/GenerationNFT.sol";
import {IERC721} from "@openzeppelin/contracts/token/ERC721/IERC721.sol";
import {IERC721Errors} from "@openzeppelin/contracts/interfaces/draft-IERC6093.sol";
import {IAccessControl} from "@openzeppelin/contracts/access/IAccessControl.sol";

/// @dev A contract that does not implement onERC721Received, as a package owner.
contract PlainContractOwner {}

/// @dev Package contract whose ownerOf reverts with no data, to check the catch-all.
contract BrokenPackage {
    function ownerOf(uint256) external pure returns (address) {
        revert();
    }
}

contract GenerationNFTTest is Test {
    INFTPackage internal pkg;
    GenerationNFT internal gen;

    address internal admin = address(0xAD111);
    address internal minter = address(0x111A7E4);
    address internal alice = address(0xA71CE0001);
    address internal bob = address(0xB0B0002);
    address internal stranger = address(0x57A4A6E7);

    bytes32 internal constant ADMIN = 0x00;
    bytes32 internal constant KEY1 = keccak256("request-1");
    bytes32 internal constant KEY2 = keccak256("request-2");
    bytes32 internal constant HASH1 = keccak256("content-1");
    bytes32 internal constant HASH2 = keccak256("content-2");

    uint256 internal aliceToken;
    uint256 internal bobToken;

    function setUp() public {
        pkg = new INFTPackage(admin);
        gen = new GenerationNFT(admin, address(pkg));
        bytes32 minterRole = gen.MINTER_ROLE();
        vm.startPrank(admin);
        pkg.setPackageType(1, 1 ether, 10, true);
        gen.grantRole(minterRole, minter);
        vm.stopPrank();
        vm.deal(alice, 10 ether);
        vm.deal(bob, 10 ether);
        vm.prank(alice);
        aliceToken = pkg.purchasePackage{value: 1 ether}(1);
        vm.prank(bob);
        bobToken = pkg.purchasePackage{value: 1 ether}(1);
    }

    function _mint(address to, uint256 packageTokenId, bytes32 key, string memory uri, bytes32 h)
        internal
        returns (uint256)
    {
        vm.prank(minter);
        return gen.mintGeneration(to, packageTokenId, key, uri, h);
    }

    // ------------------------------------------------------------ deployment

    function test_constructor_setsNameSymbolRolesAndPackage() public view {
        assertEq(gen.name(), "INFT Generation", "name");
        assertEq(gen.symbol(), "INFTG", "symbol");
        assertEq(address(gen.packageContract()), address(pkg), "package contract");
        assertTrue(gen.hasRole(ADMIN, admin), "admin");
        assertFalse(gen.hasRole(gen.MINTER_ROLE(), admin), "admin is not minter by default");
        assertTrue(gen.hasRole(gen.MINTER_ROLE(), minter), "minter granted");
        assertEq(gen.MINTER_ROLE(), keccak256("MINTER_ROLE"), "minter role id");
        assertEq(gen.getRoleAdmin(gen.MINTER_ROLE()), ADMIN, "minter role admin");
        assertEq(gen.lastTokenId(), 0, "no tokens");
    }

    function test_constructor_revertsOnZeroAdmin() public {
        vm.expectRevert(GenerationNFT.ZeroAddress.selector);
        new GenerationNFT(address(0), address(pkg));
    }

    function test_constructor_revertsOnZeroPackage() public {
        vm.expectRevert(GenerationNFT.ZeroAddress.selector);
        new GenerationNFT(admin, address(0));
    }

    function test_constructor_revertsOnPackageWithoutCode() public {
        vm.expectRevert(abi.encodeWithSelector(GenerationNFT.NotAContract.selector, alice));
        new GenerationNFT(admin, alice);
    }

    function test_supportsInterface() public view {
        assertTrue(gen.supportsInterface(0x01ffc9a7), "ERC165");
        assertTrue(gen.supportsInterface(0x80ac58cd), "ERC721");
        assertTrue(gen.supportsInterface(0x5b5e139f), "ERC721Metadata");
        assertTrue(gen.supportsInterface(type(IAccessControl).interfaceId), "AccessControl");
        assertFalse(gen.supportsInterface(0xffffffff), "0xffffffff");
    }

    /// The Python indexer decodes this exact signature.
    function test_eventSignatureIsFrozen() public pure {
        assertEq(
            GenerationNFT.GenerationMinted.selector,
            keccak256("GenerationMinted(uint256,uint256,bytes32,address,string,bytes32)"),
            "GenerationMinted"
        );
    }

    // ------------------------------------------------------------------ mint

    function test_mintGeneration_mintsStoresAndEmits() public {
        vm.expectEmit(true, true, true, true, address(gen));
        emit IERC721.Transfer(address(0), alice, 1);
        vm.expectEmit(true, true, true, true, address(gen));
        emit GenerationNFT.GenerationMinted(1, aliceToken, KEY1, alice, "ipfs://gen/1", HASH1);
        uint256 tokenId = _mint(alice, aliceToken, KEY1, "ipfs://gen/1", HASH1);

        assertEq(tokenId, 1, "first id");
        assertEq(gen.ownerOf(1), alice, "owner");
        assertEq(gen.balanceOf(alice), 1, "balance");
        assertEq(gen.tokenURI(1), "ipfs://gen/1", "tokenURI");
        assertTrue(gen.isMinted(KEY1), "isMinted");
        assertEq(gen.tokenIdOf(KEY1), 1, "tokenIdOf");
        assertEq(gen.lastTokenId(), 1, "lastTokenId");
        (uint256 packageTokenId, bytes32 requestKey, bytes32 contentHash) = gen.generationOf(1);
        assertEq(packageTokenId, aliceToken, "packageTokenId");
        assertEq(requestKey, KEY1, "requestKey");
        assertEq(contentHash, HASH1, "contentHash");
    }

    function test_mintGeneration_idsIncrement() public {
        assertEq(_mint(alice, aliceToken, KEY1, "u1", HASH1), 1, "id 1");
        vm.expectEmit(true, true, true, true, address(gen));
        emit GenerationNFT.GenerationMinted(2, bobToken, KEY2, bob, "u2", HASH2);
        assertEq(_mint(bob, bobToken, KEY2, "u2", HASH2), 2, "id 2");
        assertEq(gen.tokenIdOf(KEY2), 2, "tokenIdOf 2");
        assertEq(gen.tokenURI(2), "u2", "uri 2");
        (uint256 packageTokenId,, bytes32 contentHash) = gen.generationOf(2);
        assertEq(packageTokenId, bobToken, "package 2");
        assertEq(contentHash, HASH2, "hash 2");
    }

    function test_mintGeneration_toContractWithoutReceiverHook() public {
        PlainContractOwner c = new PlainContractOwner();
        uint256 tokenId = _mint(address(c), aliceToken, KEY1, "u", HASH1);
        assertEq(gen.ownerOf(tokenId), address(c), "contract owns generation");
    }

    function test_mintGeneration_zeroRequestKeyAndHashAllowed() public {
        uint256 tokenId = _mint(alice, aliceToken, bytes32(0), "u", bytes32(0));
        assertTrue(gen.isMinted(bytes32(0)), "minted");
        assertEq(gen.tokenIdOf(bytes32(0)), tokenId, "tokenIdOf");
    }

    function test_isMinted_and_tokenIdOf_unknownKey() public view {
        assertFalse(gen.isMinted(KEY1), "not minted");
        assertEq(gen.tokenIdOf(KEY1), 0, "tokenIdOf 0");
    }

    function test_mintGeneration_revertsForNonMinter() public {
        bytes32 role = gen.MINTER_ROLE();
        vm.expectRevert(
            abi.encodeWithSelector(IAccessControl.AccessControlUnauthorizedAccount.selector, stranger, role)
        );
        vm.prank(stranger);
        gen.mintGeneration(alice, aliceToken, KEY1, "u", HASH1);
        // The admin needs the role too.
        vm.expectRevert(abi.encodeWithSelector(IAccessControl.AccessControlUnauthorizedAccount.selector, admin, role));
        vm.prank(admin);
        gen.mintGeneration(alice, aliceToken, KEY1, "u", HASH1);
    }

    function test_mintGeneration_revertsAfterRoleRevoked() public {
        bytes32 role = gen.MINTER_ROLE();
        vm.prank(admin);
        gen.revokeRole(role, minter);
        vm.expectRevert(abi.encodeWithSelector(IAccessControl.AccessControlUnauthorizedAccount.selector, minter, role));
        vm.prank(minter);
        gen.mintGeneration(alice, aliceToken, KEY1, "u", HASH1);
    }

    function test_minterRole_onlyAdminCanGrant() public {
        bytes32 role = gen.MINTER_ROLE();
        vm.expectRevert(abi.encodeWithSelector(IAccessControl.AccessControlUnauthorizedAccount.selector, minter, ADMIN));
        vm.prank(minter);
        gen.grantRole(role, stranger);
    }

    function test_mintGeneration_revertsOnReusedRequestKey() public {
        _mint(alice, aliceToken, KEY1, "u1", HASH1);
        vm.expectRevert(abi.encodeWithSelector(GenerationNFT.AlreadyMinted.selector, KEY1, uint256(1)));
        _mint(alice, aliceToken, KEY1, "u1", HASH1);
        // Different recipient / package / uri / hash: still the same request.
        vm.expectRevert(abi.encodeWithSelector(GenerationNFT.AlreadyMinted.selector, KEY1, uint256(1)));
        _mint(bob, bobToken, KEY1, "other", HASH2);
        assertEq(gen.lastTokenId(), 1, "nothing more minted");
    }

    function test_mintGeneration_revertsOnEmptyUri() public {
        vm.expectRevert(GenerationNFT.EmptyUri.selector);
        _mint(alice, aliceToken, KEY1, "", HASH1);
    }

    function test_mintGeneration_revertsOnZeroRecipient() public {
        vm.expectRevert(GenerationNFT.ZeroAddress.selector);
        _mint(address(0), aliceToken, KEY1, "u", HASH1);
    }

    function test_mintGeneration_revertsOnUnknownPackageToken() public {
        vm.expectRevert(abi.encodeWithSelector(GenerationNFT.UnknownPackageToken.selector, uint256(999)));
        _mint(alice, 999, KEY1, "u", HASH1);
        vm.expectRevert(abi.encodeWithSelector(GenerationNFT.UnknownPackageToken.selector, uint256(0)));
        _mint(alice, 0, KEY1, "u", HASH1);
        assertFalse(gen.isMinted(KEY1), "not minted");
    }

    function test_mintGeneration_revertsWhenPackageOwnerOfRevertsWithoutData() public {
        BrokenPackage broken = new BrokenPackage();
        GenerationNFT g = new GenerationNFT(admin, address(broken));
        bytes32 role = g.MINTER_ROLE();
        vm.prank(admin);
        g.grantRole(role, minter);
        vm.expectRevert(abi.encodeWithSelector(GenerationNFT.UnknownPackageToken.selector, uint256(1)));
        vm.prank(minter);
        g.mintGeneration(alice, 1, KEY1, "u", HASH1);
    }

    function test_mintGeneration_doesNotRequireRecipientToOwnPackage() public {
        // The relayer decides the recipient (the package owner when the request
        // was made); the contract only checks that the package token exists.
        uint256 tokenId = _mint(bob, aliceToken, KEY1, "u", HASH1);
        assertEq(gen.ownerOf(tokenId), bob, "owner");
    }

    function test_mintGeneration_worksWhilePackageContractPaused() public {
        vm.prank(admin);
        pkg.pause();
        uint256 tokenId = _mint(alice, aliceToken, KEY1, "u", HASH1);
        assertEq(tokenId, 1, "minted");
    }

    // ----------------------------------------------------------------- views

    function test_tokenURI_revertsForNonexistentToken() public {
        vm.expectRevert(abi.encodeWithSelector(IERC721Errors.ERC721NonexistentToken.selector, uint256(1)));
        gen.tokenURI(1);
    }

    function test_generationOf_revertsForNonexistentToken() public {
        vm.expectRevert(abi.encodeWithSelector(IERC721Errors.ERC721NonexistentToken.selector, uint256(4)));
        gen.generationOf(4);
    }

    function test_generationTokensAreTransferable() public {
        uint256 tokenId = _mint(alice, aliceToken, KEY1, "u", HASH1);
        vm.prank(alice);
        gen.transferFrom(alice, bob, tokenId);
        assertEq(gen.ownerOf(tokenId), bob, "moved");
        (uint256 packageTokenId,,) = gen.generationOf(tokenId);
        assertEq(packageTokenId, aliceToken, "provenance kept");
    }

    // ------------------------------------------------------------ end to end

    function test_endToEnd_purchaseRequestMint() public {
        vm.prank(alice);
        uint256 requestId = pkg.requestGeneration(aliceToken, 1, "a lighthouse at dusk");
        bytes32 key = keccak256(abi.encode(block.chainid, address(pkg), requestId));
        uint256 tokenId = _mint(pkg.ownerOf(aliceToken), aliceToken, key, "ipfs://gen/lighthouse", HASH1);
        assertEq(gen.ownerOf(tokenId), alice, "alice owns the generation");
        assertEq(gen.tokenIdOf(key), tokenId, "indexed by key");
    }
}
