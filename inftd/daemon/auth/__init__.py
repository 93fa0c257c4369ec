"""Who is asking: sign-in tokens and operator keys (``tokens``), Sign-In with Ethereum
messages (``siwe``), and signatures by keys or contract wallets (``signatures``)."""
