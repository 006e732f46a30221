"""The HTTP interface of ``mept serve``: FastAPI routes over one :class:`~mept.multi_adapter.MultiAdapterModel`.

- ``GET /health``: status, adapters loaded, queued rows, batches run (and how many mixed adapters).
- ``GET /adapters``: each adapter's name, method, label words, output form and input fields.
- ``POST /predict`` ``{"adapter": NAME, "inputs": [text | {field: value}, ...]}`` ->
  ``{"predictions": [{"label", "probability", "probabilities", "experts", "truncated"}, ...]}``: the
  values ``mept predict`` writes for the same rows (:func:`mept.harness.predictions.prediction_record`).
- ``GET /openapi.json``: the schema of all of the above (FastAPI's own).

Every refusal is a 4xx/5xx with a JSON body ``{"error": "one line"}``: bad JSON 400, unknown
adapter 404, too large 413, not sent as JSON 415, bad fields or types 422, queue full or shutting down 503 (with
``Retry-After``), a request not answered in ``request_timeout`` 503. No traceback is sent.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from mept.errors import MeptError, first_line
from mept.harness.predictions import prediction_record
from mept.multi_adapter import MultiAdapterModel
from mept.multi_adapter.predict import featurize_rows, predict_features
from mept.serve.batcher import Batcher, Closed, Overloaded
from mept.serve.limits import Limits
from mept.version import __version__


class PredictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    adapter: str = Field(description="the name of a loaded adapter (GET /adapters)")
    inputs: list[str | dict[str, Any]] = Field(
        min_length=1, description="texts, or objects with the adapter's fields (sentence pairs, templates)")


class Answer(BaseModel):
    label: str | None = Field(description="the predicted label word (null: a generated answer outside them)")
    probability: float | None = Field(description="its probability (null under eval_mode generate)")
    probabilities: dict[str, float] | None = Field(None, description="every label word's probability")
    experts: list[int] = Field(description="top-1 expert per prompted layer, in layer order (routed methods)")
    truncated: bool = Field(description="the input was cut to the adapter's max length, as mept predict cuts it")


class PredictResponse(BaseModel):
    adapter: str
    predictions: list[Answer]
    truncated: int = Field(description="how many inputs were truncated")


class AdapterInfo(BaseModel):
    name: str
    method: str
    labels: list[str] | None
    output_form: str
    fields: list[str] | None = Field(description="what an input object holds; a text stands for a single field")
    prompted_layers: list[int]
    experts_reported_for_layers: list[int]
    prompt_length: int
    max_length: int | None = Field(description="text tokens an input keeps; longer ones are truncated")
    source: str


class Health(BaseModel):
    status: str
    adapters: int
    queued_rows: int
    batches: int
    rows: int
    requests: int
    mixed_batches: int
    largest_batch: int


class ErrorBody(BaseModel):
    error: str


def answer(pred: Any, adapter: Any, truncated: bool) -> dict[str, Any]:
    """A :class:`~mept.harness.evaluate.Prediction` as the API answers it: ``mept predict``'s record, renamed."""
    record = prediction_record(pred, adapter.task, adapter.layers)
    return {"label": record["prediction"], "probability": record["probability"],
            "probabilities": record.get("probabilities"), "experts": list(record.get("experts", {}).values()),
            "truncated": truncated}


def error(status: int, message: str, retry: bool = False) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers={"Retry-After": "1"} if retry else None)


UNION_TAGS = ("str", "dict[str,any]")  # pydantic's names for the kinds an input may be


def validation_message(exc: RequestValidationError) -> tuple[int, str]:
    """One line for a body FastAPI could not read: 400 for bad JSON, 422 for a wrong shape or type."""
    errors = exc.errors()
    first = errors[0] if errors else {}
    if first.get("type") == "json_invalid":
        detail = (first.get("ctx") or {}).get("error", "")
        return 400, f"the body is not valid JSON{f' ({detail})' if detail else ''}"
    def where(e: dict) -> str:
        return ".".join(str(p) for p in e.get("loc", ()) if p not in ("body", *UNION_TAGS)) or "body"

    places = list(dict.fromkeys(where(e) for e in errors))  # an input failing both kinds of the union is one problem
    union = first.get("loc", ())[-1:] and first["loc"][-1] in UNION_TAGS
    message = "should be a text or an object of fields" if union else first.get("msg", "invalid")
    more = f" (and {len(places) - 1} more problem(s))" if len(places) > 1 else ""
    return 422, f"{where(first)}: {message}{more}"


def create_app(model: MultiAdapterModel, limits: Limits, on_ready: Callable[[], None] | None = None) -> FastAPI:
    """The app, with a started :class:`~mept.serve.batcher.Batcher` that its shutdown drains."""
    batcher = Batcher(lambda items: predict_features(model, items, limits.max_batch_size),
                      max_batch_size=limits.max_batch_size, max_wait=limits.max_wait_ms / 1000,
                      max_queue=limits.max_queue, key=lambda item: item[0], mix=limits.mix_adapters)
    tokenizing = threading.Lock()  # a fast tokenizer's truncation settings are not safe to change concurrently
    state = {"status": "ok"}

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if on_ready is not None:
            on_ready()
        yield
        state["status"] = "shutting down"
        await run_in_threadpool(batcher.close)  # every accepted request is answered before the process ends

    app = FastAPI(title="mept serve", version=__version__, lifespan=lifespan,
                  description="Prompt adapters of one frozen backbone, batched together across adapters.")
    app.state.batcher = batcher
    app.add_middleware(BodyLimit, limit=limits.max_request_bytes)

    @app.exception_handler(RequestValidationError)
    async def bad_body(request, exc: RequestValidationError):
        kind = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
        if kind != "application/json" and not kind.endswith("+json"):
            return error(415, f"the body was sent as {kind}; send JSON (Content-Type: application/json)")
        return error(*validation_message(exc))

    @app.exception_handler(HTTPException)
    async def http_error(request, exc: HTTPException):
        return error(exc.status_code, str(exc.detail))

    @app.exception_handler(Exception)
    async def internal(request, exc: Exception):  # a bug of ours: one line to the client and to the log
        message = f"internal error ({type(exc).__name__}: {first_line(str(exc))})"
        print(f"error: {message}", file=sys.stderr, flush=True)
        return error(500, message)

    refusals = {status: {"model": ErrorBody} for status in (400, 404, 413, 415, 422, 503)}

    @app.get("/health", response_model=Health)
    async def health() -> dict[str, Any]:
        stats = batcher.stats
        return {"status": state["status"], "adapters": len(model.adapters), "queued_rows": batcher.queued_rows,
                "batches": stats.batches, "rows": stats.rows, "requests": stats.requests,
                "mixed_batches": stats.mixed_batches, "largest_batch": stats.largest_batch}

    @app.get("/adapters", response_model=list[AdapterInfo])
    async def adapters() -> list[dict[str, Any]]:
        return model.describe()

    @app.post("/predict", response_model=PredictResponse, responses=refusals)
    async def predict(body: PredictRequest):
        adapter = model.adapters.get(body.adapter)
        if adapter is None:
            return error(404, f"unknown adapter {body.adapter!r}; loaded: {', '.join(model.adapters)}")
        if len(body.inputs) > limits.max_inputs:
            return error(413, f"{len(body.inputs)} inputs in one request; at most {limits.max_inputs} (--max-inputs)")

        def featurize():
            with tokenizing:
                return featurize_rows(adapter, body.inputs, where="inputs")

        try:
            features, cut = await run_in_threadpool(featurize)
            future = batcher.submit([(adapter.name, f) for f in features])
        except MeptError as exc:
            return error(422, str(exc))
        except Overloaded as exc:
            return error(503, f"overloaded: {exc}; retry later", retry=True)
        except Closed:
            return error(503, "the server is shutting down", retry=True)
        try:
            preds = await asyncio.wait_for(asyncio.wrap_future(future), limits.request_timeout)
        except asyncio.TimeoutError:
            return error(503, f"not answered within {limits.request_timeout:g} s (--request-timeout)", retry=True)
        except MeptError as exc:
            return error(422, str(exc))
        return {"adapter": adapter.name, "truncated": cut,
                "predictions": [answer(p, adapter, f.truncated) for p, f in zip(preds, features)]}

    return app


class BodyLimit:
    """ASGI middleware: a body over ``limit`` bytes gets 413 before any of it is parsed (with or without
    Content-Length: a chunked body is counted as it arrives, and replayed to the app when it fits)."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http" or scope.get("method") not in ("POST", "PUT", "PATCH"):
            return await self.app(scope, receive, send)
        length = dict(scope.get("headers") or []).get(b"content-length")
        too_large = error(413, f"the body is larger than {self.limit:,} bytes (--max-request-bytes)")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            await self._discard(receive, int(length) if length.isdigit() else 0)
            return await too_large(scope, receive, send)
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.limit:
                if message.get("more_body"):
                    await self._discard(receive, size)
                return await too_large(scope, receive, send)
            if not message.get("more_body"):
                break
        body, replayed = b"".join(chunks), False

        async def replay() -> dict:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _discard(self, receive: Callable, size: int) -> None:
        """Read the rest of an oversized body (up to 64 times the limit) so the client can read the 413:
        one that is cut off mid-send sees a broken pipe instead of the answer."""
        while size <= 64 * self.limit:
            message = await receive()
            size += len(message.get("body", b""))
            if message["type"] != "http.request" or not message.get("more_body"):
                return
