"""The strategies end to end through the router: with the offline local provider, with the
real clients against the local fakes, and with a scripted judge and planner; plus how
judges' and planners' answers are read."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator

import pytest

from inftd.daemon.generation.strategies import judge
from inftd.daemon.generation.strategies.evaluate import DETAIL_PHRASE, refine_prompt
from inftd.daemon.generation.strategies.judge import (
    Verdict,
    heuristic_verdict,
    keywords,
    parse_verdict,
)
from inftd.daemon.generation.strategies.planner import heuristic_plan, parse_plan, requested_count
from inftd.daemon.generation.strategies.run import run_job
from inftd.daemon.generation.types import GenerationFailed, Output
from inftd.daemon.providers.base import ProviderError, TextRequest, TextResult, Usage
from inftd.daemon.providers.local import LocalProvider, compose
from inftd.daemon.providers.prices import OPENAI
from tests.daemon.generation.routing_support import (
    Served,
    Told,
    job,
    make_router,
    routing,
    served,
    with_local,
)
from tests.daemon.providers.support import assert_png
from tests.support.fakes.generation import Fault

LOCAL_ONLY = {"local": LocalProvider()}
SHORT = "a lighthouse keeper's log at dawn"
LONG = (
    "A long letter from a lighthouse keeper to his sister describing the storm, the broken "
    "lamp, the shipwreck, the rescue of sailors and the strange silence that followed"
)
COLLECTION = "A four-piece collection on lighthouses at dusk\n\nStyle: noir."


class Scripted(LocalProvider):
    """A text provider that answers every request with ``answers`` in turn (then the last
    again), priced at ``cost`` a call: a stand-in for a judge or planner model."""

    def __init__(self, name: str, *answers: str, cost: float = 0.001) -> None:
        super().__init__()
        self.name = name
        self._answers = list(answers)
        self._cost = cost
        self.asked: list[TextRequest] = []

    async def stream_text(self, request: TextRequest) -> AsyncIterator[str | TextResult]:
        self.asked.append(request)
        text = self._answers.pop(0) if len(self._answers) > 1 else self._answers[0]
        yield text
        yield TextResult(text, self.name, "scripted-1", Usage(10, 10, 0, self._cost))


@pytest.fixture
async def fakes() -> AsyncIterator[dict[str, Served]]:
    async with served("openai", "cloudflare") as found:
        yield found


def spent(output: Output) -> float:
    return output.usage.cost_usd


# --- single ------------------------------------------------------------------------------


async def test_single_text_from_the_local_provider_streams_and_is_labelled() -> None:
    router, recorder, _ = make_router(LOCAL_ONLY)
    told = Told()
    output = await run_job(job(prompt=SHORT), router, told)
    assert output.data.decode() == compose(SHORT) == told.text()
    assert (output.kind, output.content_type) == ("text", "text/plain; charset=utf-8")
    assert (output.provider, output.model) == ("local", "template-text-1")
    assert output.detail["strategy"] == "single"
    assert (output.detail["rounds"], output.detail["parts"]) == ([], [])
    assert [a["provider"] for a in output.detail["route"]] == ["local"]
    assert output.detail["cached"] is False
    assert spent(output) == 0.0
    assert [c.purpose for c in recorder.calls] == ["generate"]


async def test_single_image_has_the_size_asked_for() -> None:
    router, _, _ = make_router(LOCAL_ONLY)
    output = await run_job(job(kind="image", prompt=SHORT, size="320x200"), router, Told())
    assert (output.kind, output.content_type) == ("image", "image/png")
    assert_png(output.data, 320, 200)
    assert output.usage.images == 1


async def test_single_through_a_fake_provider_sums_what_it_spent(
    fakes: dict[str, Served],
) -> None:
    router, recorder, _ = make_router(with_local(fakes))
    fakes["cloudflare"].script.fail_next(Fault.status(500))
    output = await run_job(job(prompt=SHORT, quality="high"), router, Told())
    assert output.provider == "openai"  # Workers AI failed; OpenAI is next in price
    assert [a["outcome"] for a in output.detail["route"]] == ["unavailable", "ok"]
    assert spent(output) == pytest.approx(sum(c.cost_usd for c in recorder.calls))
    assert spent(output) > 0
    (asked,) = [s.body for s in fakes["openai"].fake.seen]
    assert asked["max_completion_tokens"] == routing().max_tokens_high


async def test_a_job_that_cannot_be_made_fails_for_good() -> None:
    router, recorder, _ = make_router(LOCAL_ONLY)
    with pytest.raises(GenerationFailed) as caught:
        await run_job(job(kind="image", size="9x9"), router, Told())
    assert not caught.value.transient
    with pytest.raises(GenerationFailed):
        await run_job(job(strategy="nonsense"), router, Told())
    assert recorder.calls == []


# --- evaluate ----------------------------------------------------------------------------


async def test_evaluate_stops_when_the_offline_judge_is_satisfied() -> None:
    router, recorder, _ = make_router(LOCAL_ONLY, routing(evaluate_threshold=8))
    told = Told()
    output = await run_job(job(prompt=SHORT, strategy="evaluate"), router, told)
    (round_,) = output.detail["rounds"]
    assert output.detail["stop"] == "threshold"
    assert round_["score"] >= 8
    assert round_["judge"] == {
        "provider": "local",
        "model": "template-text-1",
        "source": "heuristic",
    }
    assert round_["draft"] == output.data.decode() == compose(SHORT)
    assert told.of("round") == [round_]
    assert [c.purpose for c in recorder.calls] == ["generate", "judge"]


async def test_evaluate_refines_to_its_round_budget_and_keeps_the_best_draft() -> None:
    router, recorder, _ = make_router(LOCAL_ONLY, routing(evaluate_threshold=10, evaluate_rounds=3))
    told = Told()
    output = await run_job(job(prompt=LONG, strategy="evaluate"), router, told)
    rounds = output.detail["rounds"]
    assert [r["round"] for r in rounds] == [1, 2, 3]
    assert output.detail["stop"] == "rounds"
    assert len({r["draft"] for r in rounds}) == 3  # each round drafted anew
    assert all(r["score"] < 10 and "sailors" in r["critique"] for r in rounds)
    best = max(rounds, key=lambda r: (r["score"], -r["round"]))
    assert output.data.decode() == best["draft"]
    assert told.of("round") == rounds
    purposes = [c.purpose for c in recorder.calls]
    assert purposes == ["generate", "judge", "refine", "judge", "refine", "judge"]
    again = await run_job(job(prompt=LONG, strategy="evaluate"), router, Told())
    assert again.data == output.data
    assert again.detail["rounds"] == rounds


async def test_evaluate_with_a_fake_provider_and_the_offline_judge(
    fakes: dict[str, Served],
) -> None:
    settings = routing(evaluate_threshold=9.9, evaluate_rounds=2, judge_provider="local")
    router, recorder, _ = make_router(with_local(fakes), settings)
    output = await run_job(job(prompt=SHORT, strategy="evaluate"), router, Told())
    rounds = output.detail["rounds"]
    assert [r["provider"] for r in rounds] == ["cloudflare", "cloudflare"]
    assert all(r["judge"]["source"] == "heuristic" for r in rounds)
    assert all(r["costUsd"] > 0 for r in rounds)
    assert output.detail["stop"] == "rounds"
    assert spent(output) == pytest.approx(sum(c.cost_usd for c in recorder.calls))
    assert spent(output) == pytest.approx(sum(r["costUsd"] for r in rounds))
    (refine,) = [s.body for s in fakes["cloudflare"].fake.seen][1:]
    assert "Earlier draft:" in refine["messages"][-1]["content"]


async def test_evaluate_goes_on_when_the_judge_gives_no_score(
    fakes: dict[str, Served],
) -> None:
    # The fake echoes the judge's prompt back: no JSON, no score.
    settings = routing(evaluate_rounds=2)
    router, _, _ = make_router({"openai": fakes["openai"].provider}, settings)
    output = await run_job(job(prompt=SHORT, strategy="evaluate"), router, Told())
    rounds = output.detail["rounds"]
    assert [r["score"] for r in rounds] == [None, None]
    assert all(r["judge"]["source"] == "judge" for r in rounds)
    assert rounds[0]["critique"].startswith("Fake answer to: Request:")
    assert output.data.decode() == rounds[0]["draft"]  # nothing beat the first


async def test_evaluate_reads_a_judge_and_stops_at_its_threshold() -> None:
    reviewer = Scripted(
        "reviewer",
        '{"score": 4, "critique": "name the keeper"}',
        'Sure!\n```json\n{"score": "9/10", "critique": "good"}\n```',
    )
    router, _, _ = make_router(
        {"local": LocalProvider(), "reviewer": reviewer}, routing(judge_provider="reviewer")
    )
    asked = job(prompt=SHORT, strategy="evaluate", provider_hint="local")
    output = await run_job(asked, router, Told())
    rounds = output.detail["rounds"]
    assert [(r["score"], r["critique"]) for r in rounds] == [
        (4.0, "name the keeper"),
        (9.0, "good"),
    ]
    assert output.detail["stop"] == "threshold"
    assert output.data.decode() == rounds[1]["draft"]
    # The critique reached the redraft.
    verdict = Verdict(4.0, "name the keeper", "judge")
    assert rounds[1]["draft"] == compose(refine_prompt(SHORT, rounds[0]["draft"], verdict))
    assert spent(output) == pytest.approx(0.002)


async def test_evaluate_stops_when_the_budget_is_spent(fakes: dict[str, Served]) -> None:
    settings = routing(evaluate_threshold=10, job_budget_usd=1e-6, judge_provider="local")
    router, _, _ = make_router(with_local(fakes), settings)
    output = await run_job(job(prompt=SHORT, strategy="evaluate"), router, Told())
    assert len(output.detail["rounds"]) == 1
    assert output.detail["stop"] == "budget"


async def test_evaluate_an_image_improves_its_prompt_and_draws_once() -> None:
    router, recorder, _ = make_router(LOCAL_ONLY, routing(evaluate_threshold=10))
    output = await run_job(
        job(kind="image", prompt="a red fox", strategy="evaluate"), router, Told()
    )
    first, second = output.detail["rounds"]
    assert first["prompt"] == "a red fox"
    assert second["prompt"] == f"a red fox, {DETAIL_PHRASE}"
    assert first["score"] < second["score"] == 10
    assert output.detail["prompt"] == second["prompt"]
    assert output.content_type == "image/png"
    assert [c.purpose for c in recorder.calls] == ["judge", "refine", "judge", "generate"]
    assert recorder.calls[-1].capability == "image"


class JudgeOnly(Scripted):
    """A judge model that declines anything but judging, priced as OpenAI's dearest."""

    prices = OPENAI

    async def stream_text(self, request: TextRequest) -> AsyncIterator[str | TextResult]:
        if request.system != judge.SYSTEM:
            raise ProviderError(self.name, "refused", "I only judge", status=400)
        async for item in super().stream_text(request):
            yield item


async def test_evaluate_keeps_its_best_draft_when_a_refinement_fails(
    fakes: dict[str, Served],
) -> None:
    reviewer = JudgeOnly("reviewer", '{"score": 2, "critique": "darker"}')
    settings = routing(evaluate_rounds=3, judge_provider="reviewer")
    router, _, _ = make_router(
        {"cloudflare": fakes["cloudflare"].provider, "reviewer": reviewer}, settings
    )
    fakes["cloudflare"].script.fail_next(Fault.stall(0), Fault.status(500))  # ok, then down
    output = await run_job(job(prompt=SHORT, strategy="evaluate"), router, Told())
    assert output.detail["stop"] == "failed"
    (only,) = output.detail["rounds"]
    assert output.data.decode() == only["draft"]
    assert [a["outcome"] for a in output.detail["route"]][-2:] == ["unavailable", "refused"]


# --- orchestrate -------------------------------------------------------------------------


async def test_orchestrate_text_offline_makes_a_document_of_parts() -> None:
    router, recorder, _ = make_router(LOCAL_ONLY)
    told = Told()
    output = await run_job(job(prompt=COLLECTION, strategy="orchestrate"), router, told)
    parts = output.detail["parts"]
    assert [p["index"] for p in parts] == [0, 1, 2, 3]  # "four-piece"
    assert output.detail["plan"]["source"] == "heuristic"
    assert output.content_type == "text/markdown; charset=utf-8"
    document = output.data.decode()
    assert document.startswith("# A four-piece collection on lighthouses at dusk\n")
    assert document.count("\n## ") == 4
    assert len(output.parts) == 4
    for part, (content_type, data) in zip(parts, output.parts, strict=True):
        assert part["sha256"] == hashlib.sha256(data).hexdigest()
        assert content_type == "text/plain; charset=utf-8"
        assert data.decode() in document
        assert part["prompt"].endswith("Style: noir.")  # the agent's style reaches every part
        assert "noir" in data.decode()
    assert sorted(p["index"] for p in told.of("part")) == [0, 1, 2, 3]
    assert [c.purpose for c in recorder.calls] == ["plan", "part", "part", "part", "part"]


async def test_orchestrate_images_offline_keep_every_part() -> None:
    router, _, _ = make_router(LOCAL_ONLY)
    prompt = "a triptych of the sea"
    output = await run_job(
        job(kind="image", prompt=prompt, size="128x128", strategy="orchestrate"), router, Told()
    )
    assert len(output.parts) == 3
    assert output.data == output.parts[0][1]
    assert len({data for _, data in output.parts}) == 3  # three different images
    for content_type, data in output.parts:
        assert content_type == "image/png"
        assert_png(data, 128, 128)


async def test_orchestrate_spreads_parts_across_fake_providers(
    fakes: dict[str, Served],
) -> None:
    settings = routing(load_weight=2.0, orchestrate_concurrency=2)
    router, recorder, _ = make_router(with_local(fakes), settings)
    fakes["cloudflare"].script.latency = 0.05  # both stay busy long enough to overlap
    fakes["openai"].script.latency = 0.05
    output = await run_job(job(prompt=COLLECTION, strategy="orchestrate"), router, Told())
    parts = output.detail["parts"]
    assert len(parts) == 4
    assert {p["provider"] for p in parts} == {"cloudflare", "openai"}
    # The fakes' planner answer is no plan: the request was split offline.
    assert output.detail["plan"]["source"] == "heuristic"
    assert output.detail["plan"]["provider"] == "cloudflare"
    assert spent(output) == pytest.approx(sum(c.cost_usd for c in recorder.calls))
    assert spent(output) == pytest.approx(
        sum(p["costUsd"] for p in parts) + recorder.calls[0].cost_usd
    )


async def test_orchestrate_follows_a_planner() -> None:
    plan = (
        'Here is the plan: {"parts": [{"title": "Dawn", "prompt": "the lighthouse at dawn"}, '
        '{"title": "Night", "prompt": "the lighthouse at night"}, "the keeper asleep"]}'
    )
    planner = Scripted("planner", plan)
    router, _, _ = make_router(
        {"local": LocalProvider(), "planner": planner}, routing(planner_provider="planner")
    )
    asked = job(prompt=COLLECTION, strategy="orchestrate", provider_hint="local")
    output = await run_job(asked, router, Told())
    parts = output.detail["parts"]
    assert [p["title"] for p in parts] == ["Dawn", "Night", "the keeper asleep"]
    assert {p["provider"] for p in parts} == {"local"}
    assert parts[0]["prompt"] == "the lighthouse at dawn\n\nStyle: noir."
    assert output.detail["plan"]["source"] == "planner"
    assert "4 self-contained" in (planner.asked[0].system or "")


async def test_orchestrate_drops_parts_the_budget_cannot_pay_for(
    fakes: dict[str, Served],
) -> None:
    one_part = routing().max_tokens * 4.5 / 1e6  # gpt-5.4-mini's output, at most
    settings = routing(job_budget_usd=one_part * 2.5)
    router, _, _ = make_router({"openai": fakes["openai"].provider}, settings)
    output = await run_job(job(prompt=COLLECTION, strategy="orchestrate"), router, Told())
    assert len(output.detail["parts"]) == 2
    assert output.detail["plan"]["dropped"] == 2


async def test_a_part_failing_everywhere_fails_the_job(fakes: dict[str, Served]) -> None:
    settings = routing(orchestrate_concurrency=1)
    router, _, _ = make_router({"openai": fakes["openai"].provider}, settings)
    fakes["openai"].script.fail_next(Fault.stall(0), Fault.status(500))  # the plan, a part
    with pytest.raises(GenerationFailed) as caught:
        await run_job(job(prompt=COLLECTION, strategy="orchestrate"), router, Told())
    assert caught.value.transient
    assert "a part failed" in caught.value.message


# --- reading judges and planners ---------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "score", "critique"),
    [
        ('{"score": 7, "critique": "tighter"}', 7.0, "tighter"),
        ('```json\n{"score": "8.5", "feedback": "ok"}\n```', 8.5, "ok"),
        ('I think {"score": 11} is fair', None, ""),
        ('{"score": true}', None, ""),
        ("Score: 6 - the ending is weak", 6.0, "Score: 6 - the ending is weak"),
        ("I'd give it 3/10.", 3.0, "I'd give it 3/10."),
        ("5 out of 10", 5.0, "5 out of 10"),
        ("no idea", None, "no idea"),
        ("", None, "the judge gave no answer"),
    ],
)
def test_a_judges_answer_is_read_leniently(answer: str, score: float | None, critique: str) -> None:
    verdict = parse_verdict(answer)
    assert (verdict.score, verdict.critique, verdict.source) == (score, critique, "judge")


def test_the_offline_judge_scores_what_the_draft_carries() -> None:
    request = "A poem about a fox in the snow\n\nStyle: haiku."
    assert keywords(request) == ["poem", "fox", "snow"]
    good = heuristic_verdict(request, "A haiku poem: the fox in the snow. " + "More words " * 20)
    thin = heuristic_verdict(request, "the fox")
    assert good.score == 10
    assert thin.score is not None
    assert thin.score < 5
    assert "poem, snow" in thin.critique
    assert "style" in thin.critique


@pytest.mark.parametrize(
    ("text", "count"),
    [
        ("a four-piece collection on lighthouses", 4),
        ("write 3 short poems about rain", 3),
        ("a set of five cards", 5),
        ("a triptych of the sea", 3),
        ("a poem about the sea", None),
        ("fourteen lines", None),
    ],
)
def test_the_request_names_its_parts(text: str, count: int | None) -> None:
    assert requested_count(text) == count


def test_a_plan_is_read_leniently_and_bounded() -> None:
    items = ", ".join(f'"task {i}"' for i in range(12))
    specs = parse_plan(f"[{items}]", 5)
    assert specs is not None
    assert [s.prompt for s in specs] == [f"task {i}" for i in range(5)]
    assert parse_plan('{"tasks": ["only one"]}', 5) is None
    assert parse_plan("no plan here", 5) is None
    assert parse_plan('{"parts": [{"prompt": ""}, {"x": 1}, 3]}', 5) is None
    listed = heuristic_plan("Poems:\n- spring\n- summer\n\nStyle: noir.", 4, 8)
    assert [s.prompt for s in listed] == [
        "Poems: spring\n\nStyle: noir.",
        "Poems: summer\n\nStyle: noir.",
    ]
    assert len(heuristic_plan("a saga", 4, 8)) == 4
    assert len(heuristic_plan("twelve scenes of a saga", 4, 8)) == 8  # bounded
