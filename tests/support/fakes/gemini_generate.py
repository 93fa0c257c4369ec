"""The fake Gemini's generation methods: ``:streamGenerateContent?alt=sse`` (events
``data: {GenerateContentResponse}``, the last with ``finishReason``; usage in each) and
``:generateContent`` (text, or with ``responseModalities: ["IMAGE"]`` one inline PNG of
the ``imageConfig`` aspect ratio and size). A 429 carries Google's ``RetryInfo``.
Scripted by ``generation.script_of(app)``.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from aiohttp import web

from tests.support.fakes.gemini import STATUS, add_method, error
from tests.support.fakes.generation import (
    Fault,
    count_tokens,
    events,
    png,
    reply,
    script_of,
    streamed,
)
from tests.support.fakes.server import Fake

RETRY_INFO = "type.googleapis.com/google.rpc.RetryInfo"
SIDES = {"1K": 1024, "2K": 2048, "4K": 4096}  # imageSize -> longest side
IMAGE_TOKENS = 1120  # output tokens of one 1K image


def fault_response(fault: Fault) -> web.Response:
    body: dict[str, Any] = {
        "code": fault.code,
        "message": f"fake failure {fault.code}",
        "status": STATUS.get(fault.code, "UNKNOWN"),
    }
    if fault.retry_after is not None:
        body["details"] = [{"@type": RETRY_INFO, "retryDelay": f"{fault.retry_after:g}s"}]
    return web.json_response({"error": body}, status=fault.code)


async def _admit(request: web.Request) -> tuple[Fault | None, web.Response | None]:
    script = script_of(request.app)
    fault = script.next_fault()
    await script.wait(fault)
    if fault is not None and fault.kind == "status":
        return fault, fault_response(fault)
    return fault, None


def _texts(body: Any) -> tuple[str, list[str]] | None:
    """The last user text and every text of a request (system included); None if none."""
    if not isinstance(body, dict) or not isinstance(body.get("contents"), list):
        return None
    contents = [*body["contents"], body.get("systemInstruction") or {}]
    texts = [p["text"] for c in contents for p in c.get("parts", []) if "text" in p]
    users = [p["text"] for p in body["contents"][-1].get("parts", []) if "text" in p]
    return (users[-1], texts) if users else None


def _candidate(text: str, finish: str | None = None) -> dict[str, Any]:
    candidate: dict[str, Any] = {
        "content": {"parts": [{"text": text}], "role": "model"},
        "index": 0,
    }
    if finish:
        candidate["finishReason"] = finish
    return candidate


def _answer(model: str, candidate: dict[str, Any], prompt: int, output: int) -> dict[str, Any]:
    usage = {"promptTokenCount": prompt, "candidatesTokenCount": output}
    return {
        "candidates": [candidate],
        "usageMetadata": {**usage, "totalTokenCount": prompt + output},
        "modelVersion": model,
        "responseId": "fake-response",
    }


def _model(request: web.Request) -> str:
    return request.match_info["call"].partition(":")[0]


async def stream_generate_content(request: web.Request, fake: Fake, body: Any) -> web.Response:
    fault, early = await _admit(request)
    if early is not None:
        return early
    found = _texts(body)
    if found is None:
        return error(400, "contents is required")
    prompt, texts = found
    config = body.get("generationConfig") or {}
    chunks, cut = reply(prompt, config.get("maxOutputTokens"))
    tokens = count_tokens(*texts)
    answers = []
    for i, text in enumerate(chunks):
        finish = ("MAX_TOKENS" if cut else "STOP") if i == len(chunks) - 1 else None
        answers.append(_answer(_model(request), _candidate(text, finish), tokens, i + 1))
    items = [f"data: {json.dumps(a)}\r\n\r\n".encode() for a in answers]
    return streamed(events(items, fault, None))


async def generate_content(request: web.Request, fake: Fake, body: Any) -> web.Response:
    fault, early = await _admit(request)
    if early is not None:
        return early
    found = _texts(body)
    if found is None:
        return error(400, "contents is required")
    prompt, texts = found
    config = body.get("generationConfig") or {}
    if "IMAGE" in (config.get("responseModalities") or []):
        answer = _image_answer(_model(request), prompt, config, count_tokens(*texts), fault)
    else:
        chunks, cut = reply(prompt, config.get("maxOutputTokens"))
        candidate = _candidate("".join(chunks), "MAX_TOKENS" if cut else "STOP")
        answer = _answer(_model(request), candidate, count_tokens(*texts), len(chunks))
    text = json.dumps(answer)
    if fault is not None and fault.kind == "truncated":
        text = text[: len(text) // 2]
    return web.Response(text=text, content_type="application/json")


def image_size(config: dict[str, Any]) -> tuple[int, int]:
    """The pixels of an ``imageConfig``'s aspect ratio and size (1K by default)."""
    image = config.get("imageConfig") or {}
    side = SIDES.get(image.get("imageSize", "1K"), 1024)
    across, down = (int(x) for x in image.get("aspectRatio", "1:1").split(":"))
    if across >= down:
        return side, round(side * down / across)
    return round(side * across / down), side


def _image_answer(
    model: str, prompt: str, config: dict[str, Any], tokens: int, fault: Fault | None
) -> dict[str, Any]:
    width, height = image_size(config)
    data = base64.b64encode(png(width, height, prompt)).decode()
    if fault is not None and fault.kind == "malformed":
        data = "%% not base64 %%"
    part = {"inlineData": {"mimeType": "image/png", "data": data}}
    candidate = {"content": {"parts": [part], "role": "model"}, "finishReason": "STOP", "index": 0}
    return _answer(model, candidate, tokens, IMAGE_TOKENS)


def add_generation(app: web.Application) -> None:
    script_of(app)
    add_method(app, "streamGenerateContent", stream_generate_content)
    add_method(app, "generateContent", generate_content)
