"""The generation strategies (the seed's agent patterns), behind one entry point.

``run_job(job, router, progress)`` runs ``job.strategy``:

- ``single``: one routed call (text streamed to ``progress`` as it comes).
- ``evaluate``: Evaluator-Optimizer, see ``evaluate``.
- ``orchestrate``: Orchestrator-Workers, see ``orchestrate``.

Each returns one ``Output`` whose ``usage`` sums every call the strategy made (judges and
planners included; cache hits at cost 0) and whose ``detail`` holds ``strategy``,
``rounds``, ``parts``, ``route`` (every attempt, in order) and ``cached``; or raises
``GenerationFailed`` when every candidate failed (``transient``: trying later may help).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from inftd.daemon.generation.routing.router import Ask, Router
from inftd.daemon.generation.strategies.evaluate import evaluate
from inftd.daemon.generation.strategies.ledger import (
    Ledger,
    detail,
    image_output,
    image_request,
    text_output,
    text_request,
)
from inftd.daemon.generation.strategies.orchestrate import orchestrate
from inftd.daemon.generation.types import GenerationFailed, Job, Output, Progress

Strategy = Callable[[Job, Router, Progress], Awaitable[Output]]


async def single(job: Job, router: Router, progress: Progress) -> Output:
    ledger = Ledger()
    if job.kind == "text":
        request = text_request(job, router.settings)
        text = await router.text(Ask.of(job), request, progress, stream=True)
        ledger.add(text)
        return text_output(text.answer, ledger, detail("single", ledger, cached=text.cached))
    image = await router.image(Ask.of(job), image_request(job), progress)
    ledger.add(image)
    return image_output(image.answer, ledger, detail("single", ledger, cached=image.cached))


STRATEGIES: Mapping[str, Strategy] = {
    "single": single,
    "evaluate": evaluate,
    "orchestrate": orchestrate,
}


async def run_job(job: Job, router: Router, progress: Progress) -> Output:
    """The output of ``job`` by its strategy; ``GenerationFailed`` if it cannot be made."""
    strategy = STRATEGIES.get(job.strategy)
    if strategy is None:
        raise GenerationFailed(False, f"unknown strategy {job.strategy!r}")
    if job.kind not in ("text", "image"):
        raise GenerationFailed(False, f"unknown kind {job.kind!r}")
    return await strategy(job, router, progress)
