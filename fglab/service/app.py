"""The HTTP service: ``create_app(retriever)`` builds a FastAPI app around a :class:`Retriever`.

Handlers only translate HTTP to retriever calls and back; every check on queries, ``k``,
uploads and ids lives in the retriever, whose errors become JSON ``{"error": {code, message}}``
with a 4xx status. Routes: ``GET /health``, ``POST /search/text``, ``POST /search/image``,
``GET /items/{id}``, ``GET /images/{id}``, the OpenAPI document and the web page at ``/``.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from fastapi import FastAPI, File, Form, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from fglab.search import (
    Hit,
    InvalidQueryError,
    ItemNotFoundError,
    NotAnImageError,
    QueryTooLargeError,
    Retriever,
    SearchError,
    UnreadableImageError,
)
from fglab.service.limits import BodySizeLimit
from fglab.service.schemas import ErrorOut, HealthOut, HitOut, ItemOut, SearchResponse, TextQuery

logger = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"
STATUS = {
    InvalidQueryError: 400,
    ItemNotFoundError: 404,
    QueryTooLargeError: 413,
    NotAnImageError: 415,
    UnreadableImageError: 422,
}
#: Multipart framing around an uploaded image, allowed on top of the image byte limit.
UPLOAD_OVERHEAD = 64 * 1024
ERRORS = {status: {"model": ErrorOut} for status in (400, 404, 413, 415, 422)}


def create_app(retriever: Retriever, title: str = "fglab search") -> FastAPI:
    """A FastAPI app serving ``retriever``; see the module docstring."""
    app = FastAPI(title=title, version="1", description="Text<->image search over an index.")
    app.state.retriever = retriever
    _add_error_handlers(app)
    _add_routes(app, retriever)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.add_middleware(BodySizeLimit, max_bytes=retriever.limits.max_image_bytes + UPLOAD_OVERHEAD)
    return app


def _hit_out(hit: Hit) -> HitOut:
    return HitOut(
        **hit.to_dict(),
        item_url=f"/items/{hit.id}",
        image_url=f"/images/{hit.id}" if hit.has_image else None,
    )


def _response(kind: str, target: str, k: int, started: float, hits: list[Hit]) -> SearchResponse:
    took_ms = (time.perf_counter() - started) * 1000
    return SearchResponse(
        kind=kind, target=target, k=k, took_ms=round(took_ms, 3), hits=[_hit_out(h) for h in hits]
    )


def _add_routes(app: FastAPI, retriever: Retriever) -> None:
    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    @app.get("/health", response_model=HealthOut)
    def health() -> dict:
        return retriever.health()

    @app.post("/search/text", response_model=SearchResponse, responses=ERRORS)
    def search_text(body: TextQuery) -> SearchResponse:
        started = time.perf_counter()
        hits = retriever.search_text(body.query, body.k, body.target)
        return _response("text", body.target, body.k, started, hits)

    @app.post("/search/image", response_model=SearchResponse, responses=ERRORS)
    def search_image(
        file: UploadFile = File(description="an image: JPEG, PNG, GIF, BMP or WebP"),  # noqa: B008
        k: int = Form(10),
        target: str = Form("text"),
    ) -> SearchResponse:
        started = time.perf_counter()
        data = file.file.read(retriever.limits.max_image_bytes + 1)
        hits = retriever.search_image(data, k, target)
        return _response("image", target, k, started, hits)

    @app.get("/items/{item_id}", response_model=ItemOut, responses=ERRORS)
    def item(item_id: str) -> ItemOut:
        found = retriever.item(item_id)
        other = ("txt-" if found.modality == "image" else "img-") + found.pair_id
        has_other = other in retriever.index
        return ItemOut(
            id=found.id,
            modality=found.modality,
            pair_id=found.pair_id,
            category=found.category,
            title=found.title,
            text=found.text,
            source=found.source,
            image_url=f"/images/{found.id}" if retriever.image_file(found) else None,
            paired_item_url=f"/items/{other}" if has_other else None,
        )

    @app.get("/images/{item_id}", responses={200: {"content": {"image/jpeg": {}}}, **ERRORS})
    def image(item_id: str) -> Response:
        return Response(
            retriever.thumbnail(item_id),
            media_type="image/jpeg",
            headers={"Cache-Control": "max-age=3600"},
        )


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(SearchError)
    async def search_error(_: Request, error: SearchError) -> JSONResponse:
        status = next((s for cls, s in STATUS.items() if isinstance(error, cls)), 400)
        return _error(status, error.code, str(error))

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
        return _error(error.status_code, code, str(error.detail))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception) -> JSONResponse:
        logger.exception("unexpected error on %s", request.url.path)
        return _error(500, "internal_error", "internal error; see the server log")
