// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ERC721} from "@openzeppelin/contracts/token/ERC721/ERC721.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {Pausable} from "@openzeppelin/contracts/utils/Pausable.sol";

/// @title INFT package tokens
/// @notice Each token is a package of AI-generation credits with its own agent.
///         Buyers purchase a package type for its exact price; anyone may top up a
///         token's credits at `creditPrice` wei per credit. The token owner asks its
///         agent for generations by calling `requestGeneration`; the off-chain daemon
///         indexes the events below. Credits are spent off chain: `creditsOf` is the
///         total ever granted on chain, never decremented here.
/// @dev The event signatures are a wire format read by the Python indexer: do not
///      change them.
contract INFTPackage is ERC721, Ownable, AccessControl, Pausable {
    struct PackageType {
        uint256 price;
        uint256 credits;
        bool active;
    }

    struct AgentMetadata {
        string uri;
        bytes32 stateHash;
    }

    /// @notice Role allowed to publish agent metadata (`setAgentMetadata`).
    bytes32 public constant OPERATOR_ROLE = keccak256("OPERATOR_ROLE");

    /// @notice Longest accepted prompt, in bytes (UTF-8).
    uint256 public constant MAX_PROMPT_BYTES = 4000;

    uint8 public constant KIND_TEXT = 0;
    uint8 public constant KIND_IMAGE = 1;

    /// @notice Package type definitions; `credits == 0` means "never set".
    mapping(uint8 packageType => PackageType) public packageTypes;

    /// @notice Wei per credit for `addCredits` top-ups; 0 = top-ups disabled.
    uint256 public creditPrice;

    /// @notice Package type each token was bought as.
    mapping(uint256 tokenId => uint8) public packageTypeOf;

    /// @notice Total credits ever granted to a token (purchase + top-ups).
    mapping(uint256 tokenId => uint256) public creditsOf;

    /// @notice Latest agent metadata published by an operator.
    mapping(uint256 tokenId => AgentMetadata) public agentMetadata;

    /// @notice Id of the last minted token (ids start at 1; 0 = none yet).
    uint256 public lastTokenId;

    /// @notice Id of the last generation request (ids start at 1; 0 = none yet).
    uint256 public lastRequestId;

    event PackageTypeSet(uint8 indexed packageType, uint256 price, uint256 credits, bool active);
    event CreditPriceSet(uint256 creditPrice);
    event PackagePurchased(
        uint256 indexed tokenId, address indexed buyer, uint8 indexed packageType, uint256 credits, uint256 price
    );
    event CreditsAdded(uint256 indexed tokenId, address indexed payer, uint256 credits);
    event GenerationRequested(
        uint256 indexed tokenId, uint256 indexed requestId, address indexed requester, uint8 kind, string prompt
    );
    event AgentMetadataUpdated(uint256 indexed tokenId, string uri, bytes32 stateHash);
    event Withdrawn(address indexed to, uint256 amount);

    error ZeroCredits();
    error ZeroCreditPrice();
    error CreditPriceNotSet();
    error UnknownPackageType(uint8 packageType);
    error PackageTypeInactive(uint8 packageType);
    /// @dev For top-ups `expected` is the nearest valid amount at or below `sent`
    ///      (or one credit's price when that would be 0).
    error WrongPayment(uint256 expected, uint256 sent);
    error NotTokenOwner(uint256 tokenId, address caller);
    error InvalidKind(uint8 kind);
    error EmptyPrompt();
    error PromptTooLong(uint256 length, uint256 max);
    error ZeroAddress();
    error WithdrawFailed();

    /// @param initialOwner Owner (Ownable) and DEFAULT_ADMIN_ROLE holder, who can
    ///        grant OPERATOR_ROLE. OPERATOR_ROLE itself is not granted here.
    constructor(address initialOwner) ERC721("INFT Package", "INFTP") Ownable(initialOwner) {
        _grantRole(DEFAULT_ADMIN_ROLE, initialOwner);
    }

    // ------------------------------------------------------------------ admin

    function setPackageType(uint8 packageType, uint256 price, uint256 credits, bool active) external onlyOwner {
        if (credits == 0) revert ZeroCredits();
        packageTypes[packageType] = PackageType({price: price, credits: credits, active: active});
        emit PackageTypeSet(packageType, price, credits, active);
    }

    function setCreditPrice(uint256 newCreditPrice) external onlyOwner {
        if (newCreditPrice == 0) revert ZeroCreditPrice();
        creditPrice = newCreditPrice;
        emit CreditPriceSet(newCreditPrice);
    }

    function pause() external onlyOwner {
        _pause();
    }

    function unpause() external onlyOwner {
        _unpause();
    }

    /// @notice Sends the whole contract balance to `to`.
    function withdraw(address payable to) external onlyOwner {
        if (to == address(0)) revert ZeroAddress();
        uint256 amount = address(this).balance;
        (bool ok,) = to.call{value: amount}("");
        if (!ok) revert WithdrawFailed();
        emit Withdrawn(to, amount);
    }

    // -------------------------------------------------------------- purchases

    /// @notice Buys one package of `packageType`, paying exactly its price.
    function purchasePackage(uint8 packageType) external payable whenNotPaused returns (uint256 tokenId) {
        PackageType memory pt = packageTypes[packageType];
        if (pt.credits == 0) revert UnknownPackageType(packageType);
        if (!pt.active) revert PackageTypeInactive(packageType);
        if (msg.value != pt.price) revert WrongPayment(pt.price, msg.value);

        tokenId = ++lastTokenId;
        packageTypeOf[tokenId] = packageType;
        creditsOf[tokenId] = pt.credits;

        // _mint, not _safeMint: the recipient is always msg.sender, who chose to
        // buy an ERC-721, so the receiver check protects nobody; skipping it means
        // no external call (no reentrancy into a half-finished purchase) and a
        // fixed log order, Transfer then PackagePurchased, that the indexer uses.
        _mint(msg.sender, tokenId);
        emit PackagePurchased(tokenId, msg.sender, packageType, pt.credits, pt.price);
    }

    /// @notice Adds `msg.value / creditPrice` credits to `tokenId`. Anyone may pay.
    function addCredits(uint256 tokenId) external payable whenNotPaused {
        _requireOwned(tokenId);
        uint256 price = creditPrice;
        if (price == 0) revert CreditPriceNotSet();
        if (msg.value == 0) revert WrongPayment(price, 0);
        uint256 remainder = msg.value % price;
        if (remainder != 0) {
            uint256 expected = msg.value - remainder;
            revert WrongPayment(expected == 0 ? price : expected, msg.value);
        }
        uint256 credits = msg.value / price;
        creditsOf[tokenId] += credits;
        emit CreditsAdded(tokenId, msg.sender, credits);
    }

    // ------------------------------------------------------------ generations

    /// @notice Asks the token's agent for a generation. Only the current owner.
    /// @param kind 0 = text, 1 = image.
    function requestGeneration(uint256 tokenId, uint8 kind, string calldata prompt)
        external
        whenNotPaused
        returns (uint256 requestId)
    {
        if (_requireOwned(tokenId) != msg.sender) revert NotTokenOwner(tokenId, msg.sender);
        if (kind > KIND_IMAGE) revert InvalidKind(kind);
        uint256 length = bytes(prompt).length;
        if (length == 0) revert EmptyPrompt();
        if (length > MAX_PROMPT_BYTES) revert PromptTooLong(length, MAX_PROMPT_BYTES);

        requestId = ++lastRequestId;
        emit GenerationRequested(tokenId, requestId, msg.sender, kind, prompt);
    }

    // ---------------------------------------------------------- agent metadata

    function setAgentMetadata(uint256 tokenId, string calldata uri, bytes32 stateHash)
        external
        onlyRole(OPERATOR_ROLE)
    {
        _requireOwned(tokenId);
        agentMetadata[tokenId] = AgentMetadata({uri: uri, stateHash: stateHash});
        emit AgentMetadataUpdated(tokenId, uri, stateHash);
    }

    /// @notice The agent metadata URI last set by an operator ("" until then).
    function tokenURI(uint256 tokenId) public view override returns (string memory) {
        _requireOwned(tokenId);
        return agentMetadata[tokenId].uri;
    }

    function supportsInterface(bytes4 interfaceId) public view override(ERC721, AccessControl) returns (bool) {
        return super.supportsInterface(interfaceId);
    }
}
