"""The mint relayer (issue #7): every succeeded generation minted once as a GenerationNFT.

sender    pending mints → checks → signed and stored with their nonces → broadcast
tracker   open nonces → receipts, fee bumps, repaired gaps → mined → confirmed
nonces    one allocator per key, in the database
fees      EIP-1559 fees from eth_feeHistory, under a cap; the bump of a replacement
reverts   custom errors decoded from the ABI, and whether retrying can help
chain     the RPC calls it makes; store: its SQL; relayer: the loop
"""
