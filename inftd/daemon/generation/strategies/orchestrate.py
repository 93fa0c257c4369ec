"""Orchestrator-Workers: a planner splits a compound request, workers make the parts in
parallel, and the parts are assembled into one generation.

The planner (``planner``; routed like a text call, or pinned by ``routing.planner_provider``)
returns 2 to ``orchestrate_max_parts`` sub-tasks; without a usable plan the request is split
offline. Parts beyond what ``job_budget_usd`` can pay for (at the router's estimates) are
dropped, keeping at least one. Workers run at most ``orchestrate_concurrency`` parts at once,
each part routed on its own, so parts spread over providers as the router's load term sees
them busy; each finished part goes to ``progress("part")``, and their attempts carry
``part`` (the index). If a part fails on every provider, the others are cancelled and the
job fails (transient if every failure was).

Output: text parts become one Markdown document, a ``# title`` from the request and a
``## section`` per part; image parts make the first image the main content. Either way
``Output.parts`` holds every part's bytes and ``detail["parts"]`` (same order) their title,
prompt, provider, model, cost and sha256.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import Counter
from collections.abc import Sequence
from typing import Any

from inftd.daemon.generation.routing.router import LOCAL, Ask, Routed, Router
from inftd.daemon.generation.strategies import planner
from inftd.daemon.generation.strategies.ledger import (
    TEXT_TYPE,
    Ledger,
    detail,
    image_request,
    tagged,
    text_request,
)
from inftd.daemon.generation.strategies.planner import PartSpec
from inftd.daemon.generation.types import GenerationFailed, Job, Output, Progress
from inftd.daemon.providers.base import ImageResult, TextRequest, TextResult

DOCUMENT_TYPE = "text/markdown; charset=utf-8"
MAX_TITLE_CHARS = 80
Made = Routed[TextResult] | Routed[ImageResult]


async def orchestrate(job: Job, router: Router, progress: Progress) -> Output:
    ledger = Ledger()
    specs, plan = await _plan(job, router, ledger)
    kept = _affordable(job, router, ledger, specs)
    plan["dropped"] = len(specs) - len(kept)
    made = await _run_parts(job, router, progress, kept)
    for routed in made:
        ledger.add(routed)
    parts = [
        _part_entry(i, spec, routed)
        for i, (spec, routed) in enumerate(zip(kept, made, strict=True))
    ]
    cached = all(routed.cached for routed in made)
    about = detail("orchestrate", ledger, cached=cached, parts=parts, plan=plan)
    blobs = tuple(_bytes_of(routed) for routed in made)
    provider, model = _majority(made)
    if job.kind == "text":
        document = _document(job.prompt, kept, made)
        return Output(
            "text", document.encode(), DOCUMENT_TYPE, provider, model, ledger.usage(), about, blobs
        )
    first = blobs[0]
    return Output("image", first[1], first[0], provider, model, ledger.usage(), about, blobs)


async def _plan(job: Job, router: Router, ledger: Ledger) -> tuple[list[PartSpec], dict[str, Any]]:
    settings = router.settings
    most = settings.orchestrate_max_parts
    first, additions = planner.split_request(job.prompt)
    wanted = max(2, min(planner.requested_count(first) or settings.orchestrate_parts, most))
    ask = Ask.of(job, "plan").but(provider_hint=settings.planner_provider, hints={})
    request = TextRequest(
        job.prompt, planner.system_for(wanted, most), max_tokens=planner.PLAN_TOKENS
    )
    info: dict[str, Any] = {"source": "heuristic", "provider": None, "model": None}
    specs = None
    try:
        routed = await router.text(ask, request)
    except GenerationFailed as failure:
        ledger.add_failed(failure)
        info["error"] = failure.message
    else:
        ledger.add(routed)
        info |= {"provider": routed.answer.provider, "model": routed.answer.model}
        if routed.answer.provider != LOCAL:
            specs = planner.parse_plan(routed.answer.text, most, additions)
    if specs is None:
        return planner.heuristic_plan(job.prompt, settings.orchestrate_parts, most), info
    return specs, info | {"source": "planner"}


def _request(job: Job, router: Router, spec: PartSpec) -> Any:
    if job.kind == "text":
        return text_request(job, router.settings, spec.prompt)
    return image_request(job, spec.prompt)


def _affordable(job: Job, router: Router, ledger: Ledger, specs: list[PartSpec]) -> list[PartSpec]:
    """The parts the budget pays for, at the router's estimates; at least the first."""
    left = router.settings.job_budget_usd - ledger.cost
    kept: list[PartSpec] = []
    for spec in specs:
        cost = router.estimate(Ask.of(job, "part"), _request(job, router, spec))
        if kept and cost > left:
            break
        left -= cost
        kept.append(spec)
    return kept


async def _run_parts(
    job: Job, router: Router, progress: Progress, specs: list[PartSpec]
) -> list[Made]:
    gate = asyncio.Semaphore(router.settings.orchestrate_concurrency)
    made: list[Made | None] = [None] * len(specs)

    async def work(index: int, spec: PartSpec) -> None:
        told = tagged(progress, part=index)
        ask = Ask.of(job, "part")
        async with gate:
            request = _request(job, router, spec)
            if job.kind == "text":
                made[index] = await router.text(ask, request, told)
            else:
                made[index] = await router.image(ask, request, told)
        routed = made[index]
        assert routed is not None
        await progress("part", _part_entry(index, spec, routed))

    try:
        async with asyncio.TaskGroup() as group:
            for index, spec in enumerate(specs):
                group.create_task(work(index, spec))
    except ExceptionGroup as failed:
        raise _part_failure(failed) from None
    return [routed for routed in made if routed is not None]


def _part_failure(group: ExceptionGroup[Exception]) -> BaseException:
    failures = [e for e in group.exceptions if isinstance(e, GenerationFailed)]
    if len(failures) != len(group.exceptions):
        return group  # not only provider failures: a bug, raised as it is
    waits = [f.retry_after for f in failures if f.retry_after is not None]
    return GenerationFailed(
        all(f.transient for f in failures),
        f"a part failed: {failures[0].message}",
        retry_after=min(waits, default=None),
    )


def _bytes_of(routed: Made) -> tuple[str, bytes]:
    answer = routed.answer
    if isinstance(answer, TextResult):
        return TEXT_TYPE, answer.text.encode()
    return answer.content_type, answer.data


def _part_entry(index: int, spec: PartSpec, routed: Made) -> dict[str, Any]:
    content_type, data = _bytes_of(routed)
    return {
        "index": index,
        "title": spec.title,
        "prompt": spec.prompt,
        "provider": routed.answer.provider,
        "model": routed.answer.model,
        "costUsd": routed.usage.cost_usd,
        "cached": routed.cached,
        "contentType": content_type,
        "sha256": hashlib.sha256(data).hexdigest(),
        "bytes": len(data),
    }


def _majority(made: Sequence[Made]) -> tuple[str, str]:
    """The provider and model that made most parts (the first part's on a tie)."""
    makers = [(r.answer.provider, r.answer.model) for r in made]
    counts = Counter(makers)
    return max(makers, key=lambda m: (counts[m], -makers.index(m)))


def _document(prompt: str, specs: Sequence[PartSpec], made: Sequence[Made]) -> str:
    first, _ = planner.split_request(prompt)
    title = " ".join(first.split())[:MAX_TITLE_CHARS]
    sections = []
    for spec, routed in zip(specs, made, strict=True):
        assert isinstance(routed.answer, TextResult)
        sections.append(f"## {spec.title}\n\n{routed.answer.text.strip()}")
    return f"# {title}\n\n" + "\n\n".join(sections) + "\n"
