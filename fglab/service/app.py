"""The HTTP service: ``create_app(retriever)`` builds a FastAPI app around a :class:`Retriever`.

Handlers only translate HTTP to retriever calls and back; the checks on queries, ``k``,
uploads and ids live in the retriever, whose errors become JSON ``{"error": {code, message}}``
with a 4xx status (503 with ``Retry-After`` for a shard that is down), and the OpenAPI
document states each of them. Routes: ``GET /health``, ``POST /search/text``,
``POST /search/image``, ``GET /items/{id}``, ``GET /images/{id}``, the OpenAPI document at
``/openapi.json`` and the web page at ``/`` (no ``/docs``: Swagger UI would load from a CDN).
Middlewares (:mod:`fglab.service.limits`, :mod:`fglab.service.headers`) bound bodies and
uploads, check ``Host`` and add headers.
"""

# No ``from __future__ import annotations``: FastAPI reads the handlers' annotations, and the
# text query's model is made per app (its limits), a local name a string could not resolve.

import logging
import time
from collections.abc import Sequence
from pathlib import Path as FilePath
from typing import Literal

from fastapi import Depends, FastAPI, File, Form, Path, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.trustedhost import TrustedHostMiddleware

from fglab.index.store import ITEM_ID
from fglab.retriever import (
    Hit,
    InvalidQueryError,
    ItemNotFoundError,
    NotAnImageError,
    QueryTooLargeError,
    Retriever,
    SearchError,
    ShardUnavailableError,
    UnreadableImageError,
)
from fglab.service.headers import SecurityHeaders, allowed_hosts
from fglab.service.limits import (
    UPLOAD_OVERHEAD,
    ConcurrencyLimit,
    RequestBodyLimits,
    ServiceLimits,
    text_body_bytes,
)
from fglab.service.schemas import (
    ErrorOut,
    HealthOut,
    HitOut,
    ItemOut,
    SearchResponse,
    k_range,
    text_query_model,
)

logger = logging.getLogger(__name__)

STATIC_DIR = FilePath(__file__).parent / "static"
STATUS = {
    ShardUnavailableError: 503,  # before any class it derives from: the first match wins
    InvalidQueryError: 400,
    ItemNotFoundError: 404,
    QueryTooLargeError: 413,
    NotAnImageError: 415,
    UnreadableImageError: 422,
}
ERRORS = {status: {"model": ErrorOut} for status in (400, 404, 413, 415, 422)}
#: Seconds a client should wait before asking again after a 503 for a shard that is down.
RETRY_AFTER_S = 2
UNAVAILABLE = {
    "model": ErrorOut,
    "description": "Try again later: too many image searches at once (`busy`), or a shard of "
    "a cluster-served index has no replica that answers (`shard_unavailable`)",
    "headers": {"Retry-After": {"description": "seconds to wait before trying again",
                                "schema": {"type": "integer"}}},
}
#: Statuses a search can also get: a body too slow (408); too many uploads or a shard down (503).
SEARCH_ERRORS = {**ERRORS, 408: {"model": ErrorOut}, 503: UNAVAILABLE}
ITEM_ID_PATH = Path(description="an item id", json_schema_extra={"pattern": ITEM_ID.pattern})
#: What an upload may be; the server reads the content, not the part's declared type.
IMAGE_TYPES = ("image/jpeg", "image/png", "image/gif", "image/bmp", "image/webp", "image/tiff")
IMAGE_ENCODING = {"file": {"contentType": ", ".join(IMAGE_TYPES)}}


def create_app(
    retriever: Retriever,
    title: str = "fglab search",
    hosts: Sequence[str] = (),
    service: ServiceLimits | None = None,
) -> FastAPI:
    """A FastAPI app serving ``retriever``; see the module docstring. It answers requests
    for the loopback names and ``hosts`` (``"*"``: any ``Host``)."""
    service = service or ServiceLimits()
    app = FastAPI(
        title=title,
        version="1",
        description="Text<->image search over an index.",
        docs_url=None,
        redoc_url=None,
    )
    app.state.retriever = retriever
    _add_error_handlers(app)
    _add_routes(app, retriever)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    limits = retriever.limits
    body_limits = {
        "/search/text": text_body_bytes(limits.max_query_chars),
        "/search/image": limits.max_image_bytes + UPLOAD_OVERHEAD,
    }
    # added innermost first: headers go on every answer, Host is checked before any body
    app.add_middleware(
        RequestBodyLimits,
        limits=body_limits,
        default=service.other_body_bytes,
        timeout_s=service.body_timeout_s,
    )
    app.add_middleware(ConcurrencyLimit, path="/search/image", max_active=service.max_uploads)
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts(hosts))
    app.add_middleware(SecurityHeaders)
    return app


def _hit_out(hit: Hit) -> HitOut:
    return HitOut(
        **hit.to_dict(),
        item_url=f"/items/{hit.id}",
        image_url=f"/images/{hit.id}" if hit.has_image else None,
    )


def _response(kind: str, target: str, k: int, started: float, hits: list[Hit],
              note: str | None = None) -> SearchResponse:
    took_ms = (time.perf_counter() - started) * 1000
    return SearchResponse(kind=kind, target=target, k=k, took_ms=round(took_ms, 3),
                          hits=[_hit_out(h) for h in hits], note=note)


def _item_out(retriever: Retriever, found) -> ItemOut:
    other = ("txt-" if found.modality == "image" else "img-") + found.pair_id
    return ItemOut(
        id=found.id,
        modality=found.modality,
        pair_id=found.pair_id,
        category=found.category,
        title=found.title,
        text=found.text,
        source=found.source,
        image_url=f"/images/{found.id}" if retriever.image_file(found) else None,
        paired_item_url=f"/items/{other}" if other in retriever.index else None,
    )


def _add_routes(app: FastAPI, retriever: Retriever) -> None:
    limits = retriever.limits
    TextQuery = text_query_model(limits.max_query_chars, limits.max_k)  # noqa: N806

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    @app.get("/health", response_model=HealthOut)
    def health() -> dict:
        return retriever.health()

    @app.post("/search/text", response_model=SearchResponse, responses=SEARCH_ERRORS)
    def search_text(body: TextQuery) -> SearchResponse:
        started = time.perf_counter()
        hits = retriever.search_text(body.query, body.k, body.target)
        note = retriever.query_note(body.query)
        return _response("text", body.target, body.k, started, hits, note)

    @app.post(
        "/search/image",
        response_model=SearchResponse,
        responses=SEARCH_ERRORS,
        openapi_extra={
            "requestBody": {"content": {"multipart/form-data": {"encoding": IMAGE_ENCODING}}}
        },
        dependencies=[Depends(_one_value_per_form_field)],
    )
    def search_image(
        file: UploadFile = File(  # noqa: B008
            description=f"an image (JPEG, PNG, GIF, BMP, WebP, TIFF) of at most "
            f"{limits.max_image_bytes} bytes and {limits.max_image_pixels} pixels (larger "
            "ones get 413), each side at least 8 pixels",
            json_schema_extra={"minLength": 1},
        ),
        k: int = Form(10, description="how many results", json_schema_extra=k_range(limits.max_k)),
        target: Literal["image", "text"] = Form("text", description="which items to rank"),
    ) -> SearchResponse:
        started = time.perf_counter()
        data = file.file.read(limits.max_image_bytes + 1)
        hits = retriever.search_image(data, k, target)
        return _response("image", target, k, started, hits)

    @app.get("/items/{item_id}", response_model=ItemOut, responses=ERRORS)
    def item(item_id: str = ITEM_ID_PATH) -> ItemOut:
        return _item_out(retriever, retriever.item(item_id))

    @app.get("/images/{item_id}", responses={200: {"content": {"image/jpeg": {}}}, **ERRORS})
    def image(item_id: str = ITEM_ID_PATH) -> Response:
        return Response(
            retriever.thumbnail(item_id),
            media_type="image/jpeg",
            headers={"Cache-Control": "max-age=3600"},
        )


async def _one_value_per_form_field(request: Request) -> None:
    """FastAPI reads an empty form field (``k=``) as an absent one, taking its default, and a
    field sent twice as its last value; the schema allows neither, so both are refused."""
    form = await request.form()  # parsed once: FastAPI reads the same parsed form
    problems = []
    for name in ("file", "k", "target"):
        values = form.getlist(name)
        if len(values) > 1:
            problems.append((name, f"given {len(values)} times; send it once"))
        elif values == [""] and name != "file":
            problems.append((name, "must not be empty"))
    if problems:
        raise RequestValidationError(
            [{"loc": ("body", name), "msg": msg, "type": "value_error"} for name, msg in problems]
        )


def _error(status: int, code: str, message: str, headers=None) -> JSONResponse:
    body = {"error": {"code": code, "message": message}}
    return JSONResponse(body, status_code=status, headers=headers)


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(SearchError)
    async def search_error(_: Request, error: SearchError) -> JSONResponse:
        status = next((s for cls, s in STATUS.items() if isinstance(error, cls)), 400)
        retry = {"Retry-After": str(RETRY_AFTER_S)} if status == 503 else None
        return _error(status, error.code, str(error), retry)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, error: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', 'invalid')}"
            for e in error.errors()
        )
        return _error(422, "invalid_request", problems or "invalid request")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, error: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(error.status_code, "http_error")
        # the exception's headers matter: a 405 names the allowed methods in ``Allow``
        return _error(error.status_code, code, str(error.detail), error.headers)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception) -> JSONResponse:
        logger.exception("unexpected error on %s", request.url.path)
        return _error(500, "internal_error", "internal error; see the server log")
