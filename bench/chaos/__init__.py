"""``python -m bench.chaos``: the daemon under a randomized workload while everything that
can fail does, then the design's invariants checked against the chain and the database.

    .venv/bin/python -m bench.chaos --seconds 600 --seed 1
    .venv/bin/python -m bench.chaos --seconds 600 --database-url postgresql://postgres@127.0.0.1/chaos

What one run does (each part is a module here):

- ``world``: starts Anvil and deploys the contracts; puts the fault-injecting JSON-RPC proxy
  (``tests/support/faultproxy.py``) between the daemons and Anvil; serves fake OpenAI and
  Gemini providers (``tests/support/fakes``) and points the daemons' real provider clients
  at them, so routing and fallback (to the offline local provider last) are exercised;
  migrates the database and starts ``--processes`` ``inftd run`` processes (``daemons``:
  a ``DaemonSet`` of OS processes, each with its own arguments, any one of which can be
  SIGKILLed and started again, so role processes slot in when ``inftd run`` has them).
- ``workload``: four workers pick weighted random operations for ``--seconds``: purchases,
  top-ups and transfers on chain, generations by the API (202s are recorded) and by
  ``requestGeneration`` on chain, feedback, messages between agents.
- ``faults``: at the same time, SIGKILLs of a random daemon (restarted as a supervisor
  would, retrying a start that met a fault), reorgs (``evm_snapshot``, blocks, then
  ``evm_revert`` and a longer branch of other blocks), RPC faults (429, 500, 502, stalls,
  truncated and non-JSON bodies, resets: a steady 3 % plus bursts) and provider faults
  (429 with Retry-After, 500, stalls past the timeout, malformed and truncated bodies).
- ``run``: then calm (no faults, every daemon up), quiescence (nothing queued, running or
  unmined, the head indexed; bounded by ``--settle``), a clean stop, and ``invariants``:
  the checks of invariants 1, 2, 3 (against a fresh database indexed from scratch with
  ``inftd backfill``'s code), 4 and 7 of the design.
- ``report``: operations by kind (and what was refused or unanswered), kills, reorgs,
  faults, generations and mints by status, checks per invariant, and every violation.

The exit code is 0 only with no violation and a settled system. ``--seed`` fixes every
random choice (operations, fault kinds and moments); the interleaving with the daemons'
own timing still differs between runs. ``--database-url`` names an empty database (it is
migrated and bound to the new chain); by default a SQLite file in the work folder.
``--work-dir`` keeps the logs (each daemon's stderr, Anvil's) and databases; otherwise a
temporary folder is removed after a clean run and named after a failed one.
"""
