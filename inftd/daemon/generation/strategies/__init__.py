"""The generation strategies behind ``run.run_job``: single, Evaluator-Optimizer
(``evaluate`` with its ``judge``) and Orchestrator-Workers (``orchestrate`` with its
``planner``), sharing a ``ledger`` of their calls."""
