// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ERC721} from "@openzeppelin/contracts/token/ERC721/ERC721.sol";
import {IERC721} from "@openzeppelin/contracts/token/ERC721/IERC721.sol";
import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";

/// @title INFT generation NFTs
/// @notice One token per finished generation, minted by the platform's relayer
///         (MINTER_ROLE). `requestKey` identifies the generation off chain and can
///         be minted only once, which makes a retried mint transaction harmless.
/// @dev The event signature is a wire format read by the Python indexer: do not
///      change it.
contract GenerationNFT is ERC721, AccessControl {
    struct Generation {
        uint256 packageTokenId;
        bytes32 requestKey;
        bytes32 contentHash;
    }

    bytes32 public constant MINTER_ROLE = keccak256("MINTER_ROLE");

    /// @notice The INFTPackage contract whose tokens generations belong to.
    IERC721 public immutable packageContract;

    /// @notice Id of the last minted token (ids start at 1; 0 = none yet).
    uint256 public lastTokenId;

    /// @notice Generation token minted for a request key; 0 if none.
    mapping(bytes32 requestKey => uint256 tokenId) public tokenIdOf;

    mapping(uint256 tokenId => Generation) private _generations;
    mapping(uint256 tokenId => string) private _uris;

    event GenerationMinted(
        uint256 indexed tokenId,
        uint256 indexed packageTokenId,
        bytes32 indexed requestKey,
        address to,
        string uri,
        bytes32 contentHash
    );

    error ZeroAddress();
    error NotAContract(address account);
    error AlreadyMinted(bytes32 requestKey, uint256 tokenId);
    error EmptyUri();
    error UnknownPackageToken(uint256 packageTokenId);

    /// @param admin DEFAULT_ADMIN_ROLE holder, who can grant MINTER_ROLE. MINTER_ROLE
    ///        itself is not granted here.
    /// @param packageContract_ The INFTPackage contract (must have code: a call to
    ///        `ownerOf` on an address without code could not be caught below).
    constructor(address admin, address packageContract_) ERC721("INFT Generation", "INFTG") {
        if (admin == address(0) || packageContract_ == address(0)) revert ZeroAddress();
        if (packageContract_.code.length == 0) revert NotAContract(packageContract_);
        packageContract = IERC721(packageContract_);
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
    }

    function mintGeneration(
        address to,
        uint256 packageTokenId,
        bytes32 requestKey,
        string calldata uri,
        bytes32 contentHash
    ) external onlyRole(MINTER_ROLE) returns (uint256 tokenId) {
        if (to == address(0)) revert ZeroAddress();
        uint256 existing = tokenIdOf[requestKey];
        if (existing != 0) revert AlreadyMinted(requestKey, existing);
        if (bytes(uri).length == 0) revert EmptyUri();
        try packageContract.ownerOf(packageTokenId) returns (address) {}
        catch {
            revert UnknownPackageToken(packageTokenId);
        }

        tokenId = ++lastTokenId;
        tokenIdOf[requestKey] = tokenId;
        _generations[tokenId] =
            Generation({packageTokenId: packageTokenId, requestKey: requestKey, contentHash: contentHash});
        _uris[tokenId] = uri;

        // _mint, not _safeMint: `to` is the package owner, possibly a contract
        // that does not implement onERC721Received. A finished generation must
        // always be mintable exactly once, so a receiver must not be able to
        // reject (or re-enter) the mint; MINTER_ROLE already vets the call.
        _mint(to, tokenId);
        emit GenerationMinted(tokenId, packageTokenId, requestKey, to, uri, contentHash);
    }

    function isMinted(bytes32 requestKey) external view returns (bool) {
        return tokenIdOf[requestKey] != 0;
    }

    /// @notice (packageTokenId, requestKey, contentHash) of an existing token.
    function generationOf(uint256 tokenId)
        external
        view
        returns (uint256 packageTokenId, bytes32 requestKey, bytes32 contentHash)
    {
        _requireOwned(tokenId);
        Generation storage g = _generations[tokenId];
        return (g.packageTokenId, g.requestKey, g.contentHash);
    }

    function tokenURI(uint256 tokenId) public view override returns (string memory) {
        _requireOwned(tokenId);
        return _uris[tokenId];
    }

    function supportsInterface(bytes4 interfaceId) public view override(ERC721, AccessControl) returns (bool) {
        return super.supportsInterface(interfaceId);
    }
}
