"""Prediction over HTTP: one :class:`~csa_keras.inference.predictor.Predictor` behind a small API and page.

``python -m csa_keras.serve`` (:mod:`csa_keras.serve`) runs :func:`create_app`
under uvicorn. The API:

``POST /predict``
    an image, as the raw request body (``curl --data-binary @photo.jpg``) or
    as the ``file`` field of a multipart form (the page); answers
    ``{"model": name, "records": [...]}``, the records exactly as
    ``python -m csa_keras.predict`` prints them (``source`` is ``"<bytes>"``).
``GET /health``
    ``{"status": "ok", "model": name, "busy": n, "capacity": n}``.
``GET /models``
    the pretrained models of the package and the one being served, with
    its class names.
``GET /``
    a page where a person drops a photograph or takes one with the
    browser's camera and sees the boxes and labels drawn on it.

Every refusal is one line of JSON (``{"error": "..."}``) with its status:
413 for a request over ``max_request_bytes`` or an image whose pixels
exceed the decoder's limit, 415 for a body that is not an image, 503 when
``queue`` requests already wait for the model (a bounded queue: the service
sheds load instead of growing without bound). Predictions run one at a time
on a worker thread, so the event loop keeps answering ``/health`` and
refusals while the model works.

FastAPI, Starlette and uvicorn come with the ``serve`` extra
(``pip install 'csa-keras[serve]'``); this module imports FastAPI, so only
the service imports it.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse
from starlette.datastructures import Headers
from starlette.formparsers import MultiPartParser

from csa_keras.inference.litert import pretrained_artifacts
from csa_keras.inference.loading import DEFAULT_MODEL, pretrained_names
from csa_keras.inference.predictor import Predictor
from csa_keras.inference.records import rounded_record

MAX_REQUEST_BYTES = 10 * 2**20
"""The largest request body ``POST /predict`` reads (a phone photograph is 2 to 6 MB)."""

QUEUE = 8
"""Requests that may wait for the model while one is classified; the next is refused with 503."""

PAGE = Path(__file__).resolve().parent / "static" / "index.html"
"""The single page served at ``/``."""

TOO_LARGE = "image too large"
"""The decoder's reason answered with 413 (the image's size); every other one is 415 (not an image)."""


class RequestTooLarge(Exception):
    """The request body passed ``max_request_bytes`` while being read."""


async def _read_body(request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise RequestTooLarge
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


async def _image_bytes(request, limit: int) -> bytes:
    """The image of a request: the ``file`` field of a multipart form, else the raw body."""
    body = await _read_body(request, limit)
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        return body
    async def replay():
        yield body
        yield b""

    form = await MultiPartParser(Headers(raw=request.headers.raw), replay(),
                                 max_files=1, max_fields=8).parse()
    upload = form.get("file")
    if upload is None or isinstance(upload, str):
        raise ValueError("the form has no file field named 'file'")
    return await upload.read()


def create_app(predictor: Predictor, model_name: str, max_request_bytes: int = MAX_REQUEST_BYTES,
               queue: int = QUEUE):
    """The FastAPI application serving ``predictor`` (module docstring).

    ``model_name`` is what the answers call the model (a pretrained name or
    the path it was loaded from).
    """
    if not isinstance(max_request_bytes, int) or max_request_bytes < 1:
        raise ValueError(f"max_request_bytes must be a positive integer. Received: "
                         f"max_request_bytes={max_request_bytes!r}")
    if not isinstance(queue, int) or queue < 0:
        raise ValueError(f"queue must be an integer of at least 0. Received: queue={queue!r}")
    worker = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="predict")

    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        worker.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(title="csa-keras", summary="facial expression recognition", lifespan=lifespan,
                  docs_url="/docs", redoc_url=None)
    state = {"busy": 0}
    capacity = queue + 1

    def refuse(status: int, message: str) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status)

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "model": model_name, "busy": state["busy"], "capacity": capacity}

    # On LiteRT the task registry (whose tasks import Keras) stays unloaded: the models in the box
    # are those that ship a TFLite artifact.
    light = getattr(predictor, "runtime", "keras") == "litert"
    in_the_box = pretrained_artifacts() if light else pretrained_names()

    @app.get("/models")
    async def models() -> dict[str, Any]:
        return {"serving": {"name": model_name, "class_names": list(predictor.class_names),
                            "runtime": "litert" if light else "keras"},
                "pretrained": [{"name": name, "default": name == DEFAULT_MODEL} for name in in_the_box]}

    @app.get("/", include_in_schema=False)
    async def page():
        return FileResponse(PAGE, media_type="text/html")

    @app.post("/predict")
    async def predict(request: Request):
        if state["busy"] >= capacity:
            return refuse(503, f"busy: {state['busy']} requests are being served or wait; try again")
        state["busy"] += 1
        try:
            try:
                data = await _image_bytes(request, max_request_bytes)
            except RequestTooLarge:
                return refuse(413, f"request larger than {max_request_bytes} bytes")
            except ValueError as error:
                return refuse(415, str(error).splitlines()[0])
            if not data:
                return refuse(415, "empty request: send an image")
            records = await asyncio.wrap_future(worker.submit(predictor.predict, data))
        finally:
            state["busy"] -= 1
        errors = [r["error"] for r in records if r["status"] == "error"]
        if errors:
            reason = errors[0] or "unreadable image"
            return refuse(413 if reason.startswith(TOO_LARGE) else 415, f"not a usable image: {reason}")
        return {"model": model_name, "records": [rounded_record(r) for r in records]}

    app.state.predictor = predictor
    return app
