"""Evaluator-Optimizer: draft, judge, refine, until good enough or out of budget.

Text: round 1 drafts the request (streamed to ``progress`` like any text); a judge scores
the draft 0-10 against the request with a critique (``judge``); if the score is below
``evaluate_threshold``, the next round redrafts with the earlier draft and the critique.
The loop ends at the threshold, after ``evaluate_rounds`` drafts, or when the next round's
estimated cost would take the job past ``job_budget_usd``. The output is the best-scored
draft (the earlier one on a tie), not necessarily the last.

Images: the judge cannot see pixels (no provider here takes image input), so the loop
improves the *prompt* instead of redrawing: each round judges how fully the image prompt
states the request, and a rewrite addresses the critique; the image is drawn once, from
the best prompt. Redrawing every round would only cost more, since nothing would tell the
drafts apart. The limit stands: the score is of the prompt, not of the picture.

Every round (its draft or prompt, score, critique, judge, provider, cost) goes into
``detail["rounds"]`` and to ``progress("round")``. A judge that fails is replaced by the
offline heuristic judge for that round; a later round that fails ends the loop with the
best draft so far (``detail["stop"] == "failed"``); only a failed first draft fails the job.
An image prompt whose rewrite comes back unchanged ends the loop too (``"converged"``).
"""

from __future__ import annotations

from typing import Any

from inftd.daemon.generation.routing.router import LOCAL, Ask, Purpose, Routed, Router
from inftd.daemon.generation.strategies import judge
from inftd.daemon.generation.strategies.judge import Verdict
from inftd.daemon.generation.strategies.ledger import (
    Ledger,
    detail,
    image_output,
    image_request,
    text_output,
    text_request,
)
from inftd.daemon.generation.types import GenerationFailed, Job, Output, Progress
from inftd.daemon.providers.base import TextRequest, TextResult

MAX_ROUND_CHARS = 4000  # of a draft kept in detail["rounds"]; the output holds it whole
MAX_PROMPT_CHARS = 1000  # of a rewritten image prompt
REWRITE_TOKENS = 300
SHORT_PROMPT_WORDS = 8
DETAIL_PHRASE = "finely detailed, carefully composed, in soft natural light"  # offline, thin
REFINE = (
    "{request}\n\nRevise your earlier draft of this request. A reviewer scored it "
    "{score}/10 and said: {critique}\n\nEarlier draft:\n{draft}"
)
REWRITE_SYSTEM = (
    "You write prompts for an image model. Rewrite the image prompt so that it fully states "
    "the request, addressing the critique. Reply with the new prompt only: one paragraph, "
    "at most 80 words."
)


def refine_prompt(request: str, draft: str, verdict: Verdict) -> str:
    score = "no score" if verdict.score is None else f"{verdict.score:g}"
    return REFINE.format(
        request=request.strip(), score=score, critique=verdict.critique, draft=draft.strip()
    )


async def evaluate(job: Job, router: Router, progress: Progress) -> Output:
    if job.kind == "image":
        return await _evaluate_image(job, router, progress)
    return await _evaluate_text(job, router, progress)


def _better(new: Verdict, old: Verdict | None) -> bool:
    if old is None:
        return True
    return new.score is not None and (old.score is None or new.score > old.score)


def _stop(router: Router, number: int, verdict: Verdict, cost: float) -> str | None:
    """Why the loop ends after round ``number``, given the next round's cost; None: go on."""
    settings = router.settings
    if verdict.score is not None and verdict.score >= settings.evaluate_threshold:
        return "threshold"
    if number >= settings.evaluate_rounds:
        return "rounds"
    if cost > settings.job_budget_usd:
        return "budget"
    return None


async def judged(
    job: Job, router: Router, ledger: Ledger, draft: str, *, image: bool = False
) -> tuple[Verdict, dict[str, Any]]:
    """The verdict on ``draft`` and who gave it; the heuristic judge if the local provider
    answered or every judge failed."""
    try:
        routed = await router.text(_judge_ask(job, router), _judge_request(job, draft, image))
    except GenerationFailed as failure:
        ledger.add_failed(failure)
        verdict = judge.heuristic_verdict(job.prompt, draft, image=image)
        return verdict, {"provider": None, "model": None, "error": failure.message}
    ledger.add(routed)
    answer = routed.answer
    if answer.provider == LOCAL:
        verdict = judge.heuristic_verdict(job.prompt, draft, image=image)
    else:
        verdict = judge.parse_verdict(answer.text)
    return verdict, {"provider": answer.provider, "model": answer.model}


def _judge_ask(job: Job, router: Router) -> Ask:
    """The judge is the configured one if any, and the agent's tastes do not steer it."""
    return Ask.of(job, "judge").but(provider_hint=router.settings.judge_provider, hints={})


def _judge_request(job: Job, draft: str, image: bool) -> TextRequest:
    return TextRequest(
        judge.judge_prompt(job.prompt, draft, image=image),
        judge.system_for(image),
        max_tokens=judge.JUDGE_TOKENS,
    )


def _round(
    number: int, verdict: Verdict, judge_by: dict[str, Any], spent: float, **made: Any
) -> dict[str, Any]:
    return {
        "round": number,
        **made,
        "score": verdict.score,
        "critique": verdict.critique,
        "judge": {**judge_by, "source": verdict.source},
        "costUsd": spent,
    }


# --- text -------------------------------------------------------------------------------


async def _evaluate_text(job: Job, router: Router, progress: Progress) -> Output:
    settings = router.settings
    ledger = Ledger()
    rounds: list[dict[str, Any]] = []
    best: tuple[Verdict, Routed[TextResult]] | None = None
    prompt, number, stop = job.prompt, 0, None
    while stop is None:
        number += 1
        before = ledger.cost
        purpose: Purpose = "generate" if number == 1 else "refine"
        try:
            draft = await router.text(
                Ask.of(job, purpose), text_request(job, settings, prompt), progress, stream=True
            )
        except GenerationFailed as failure:
            if best is None:
                raise
            ledger.add_failed(failure)
            stop = "failed"
            break
        ledger.add(draft)
        verdict, judge_by = await judged(job, router, ledger, draft.answer.text)
        entry = _round(
            number, verdict, judge_by, ledger.cost - before, **_draft_fields(draft.answer, draft)
        )
        rounds.append(entry)
        await progress("round", entry)
        if best is None or _better(verdict, best[0]):
            best = (verdict, draft)
        prompt = refine_prompt(job.prompt, draft.answer.text, verdict)
        stop = _stop(router, number, verdict, ledger.cost + _next_text_cost(job, router, prompt))
    assert best is not None  # the first round either made a draft or raised
    about = detail("evaluate", ledger, cached=best[1].cached, rounds=rounds, stop=stop)
    return text_output(best[1].answer, ledger, about)


def _draft_fields(answer: TextResult, routed: Routed[TextResult]) -> dict[str, Any]:
    return {
        "provider": answer.provider,
        "model": answer.model,
        "draft": answer.text[:MAX_ROUND_CHARS],
        "draftChars": len(answer.text),
        "cached": routed.cached,
    }


def _next_text_cost(job: Job, router: Router, prompt: str) -> float:
    """The estimated USD of one more round: a redraft of ``prompt`` and its judging."""
    draft = router.estimate(Ask.of(job, "refine"), text_request(job, router.settings, prompt))
    max_draft = "x" * (router.settings.max_tokens_high * 4)  # a judge reads a draft this long
    review = router.estimate(_judge_ask(job, router), _judge_request(job, max_draft, False))
    return draft + review


# --- images -----------------------------------------------------------------------------


async def _evaluate_image(job: Job, router: Router, progress: Progress) -> Output:
    ledger = Ledger()
    rounds: list[dict[str, Any]] = []
    best: tuple[Verdict, str] | None = None
    prompt, number, stop = job.prompt, 0, None
    while stop is None:
        number += 1
        before = ledger.cost
        if best is not None:  # a later round: rewrite the prompt to meet the last critique
            rewritten = await _rewrite(job, router, ledger, prompt, rounds[-1]["critique"])
            if rewritten is None or rewritten == prompt:
                stop = "failed" if rewritten is None else "converged"
                break
            prompt = rewritten
        verdict, judge_by = await judged(job, router, ledger, prompt, image=True)
        entry = _round(number, verdict, judge_by, ledger.cost - before, prompt=prompt)
        rounds.append(entry)
        await progress("round", entry)
        if _better(verdict, best[0] if best else None):
            best = (verdict, prompt)
        stop = _stop(router, number, verdict, ledger.cost + _next_image_cost(job, router))
    assert best is not None
    drawn = await router.image(Ask.of(job), image_request(job, best[1]), progress)
    ledger.add(drawn)
    about = detail(
        "evaluate", ledger, cached=drawn.cached, rounds=rounds, stop=stop, prompt=best[1]
    )
    return image_output(drawn.answer, ledger, about)


def _next_image_cost(job: Job, router: Router) -> float:
    """The estimated USD of one more round and of the drawing still to come."""
    long_prompt = "x" * MAX_PROMPT_CHARS
    rewrite = router.estimate(Ask.of(job, "refine"), _rewrite_request(job, long_prompt, ""))
    review = router.estimate(_judge_ask(job, router), _judge_request(job, long_prompt, True))
    drawing = router.estimate(Ask.of(job), image_request(job))
    return rewrite + review + drawing


def _rewrite_request(job: Job, prompt: str, critique: str) -> TextRequest:
    text = f"Request:\n{job.prompt}\n\nImage prompt:\n{prompt}\n\nCritique:\n{critique}"
    return TextRequest(text, REWRITE_SYSTEM, max_tokens=REWRITE_TOKENS)


async def _rewrite(
    job: Job, router: Router, ledger: Ledger, prompt: str, critique: str
) -> str | None:
    """The image prompt rewritten to meet the critique; None if no provider could."""
    try:
        routed = await router.text(Ask.of(job, "refine"), _rewrite_request(job, prompt, critique))
    except GenerationFailed as failure:
        ledger.add_failed(failure)
        return None
    ledger.add(routed)
    if routed.answer.provider == LOCAL:
        return offline_rewrite(job.prompt, prompt)
    text = " ".join(routed.answer.text.strip().split("\n\n")[0].split())
    return text[:MAX_PROMPT_CHARS] or None


def offline_rewrite(request: str, prompt: str) -> str:
    """The local stand-in for a rewrite: the request's words the prompt lacks, added, and
    more detail asked for if the prompt is thin."""
    missing = [w for w in judge.keywords(request) if w not in prompt.casefold()]
    extra = [*missing]
    thin = len(prompt.split()) + len(extra) < SHORT_PROMPT_WORDS
    if thin and DETAIL_PHRASE not in prompt:
        extra.append(DETAIL_PHRASE)
    return ", ".join([prompt.rstrip(", "), *extra]) if extra else prompt
