"""The ``inftd`` commands: ``main`` parses them; ``run`` supervises a process's roles, ``dev``
the local stack on ``devnet`` (Anvil), ``deploy``, ``backfill`` and ``status`` the others."""
