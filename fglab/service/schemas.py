"""Request and response bodies of the search service (they make the OpenAPI document)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

#: A query with something besides whitespace and invisible characters: exactly what
#: :func:`fglab.retriever.is_blank` accepts (JSON Schema's ``\\S`` differs from Python's
#: whitespace at U+001C-U+001F and U+FEFF).
QUERY_PATTERN = (
    "[^\\u0009-\\u000d\\u001c-\\u0020\\u0085\\u00a0\\u1680\\u2000-\\u200d"
    "\\u2028\\u2029\\u202f\\u205f\\u2060\\u3000\\ufeff]"
)


def _integral(value: object) -> object:
    """JSON Schema's ``integer`` holds 3.0 too (but not true, "3" or 3.5): 3.0 becomes 3."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


#: A JSON integer as JSON Schema means it; pydantic's own ``int`` would also take true and "3".
JsonInteger = Annotated[int, BeforeValidator(_integral), Field(strict=True)]


def k_range(max_k: int) -> dict:
    """The JSON Schema bounds of ``k``; the retriever enforces them (400 outside)."""
    return {"minimum": 1, "maximum": max_k}


def text_query_model(max_query_chars: int, max_k: int) -> type[BaseModel]:
    """The body of ``POST /search/text`` for these limits. Length and types are checked on
    parsing (422); an empty query or ``k`` out of range by the retriever (400), with its
    messages, and the schema states both."""

    class TextQuery(BaseModel):
        model_config = ConfigDict(extra="forbid")

        query: str = Field(
            max_length=max_query_chars,
            description="words to search for, e.g. 'naval battle in the pacific'",
            json_schema_extra={"minLength": 1, "pattern": QUERY_PATTERN},
        )
        k: JsonInteger = Field(10, description="how many results", json_schema_extra=k_range(max_k))
        target: Literal["image", "text"] = Field("image", description="which items to rank")

    return TextQuery


class HitOut(BaseModel):
    rank: int
    id: str
    modality: Literal["image", "text"]
    score: float = Field(description="inner product of query and item embeddings")
    category: str | None
    title: str
    snippet: str
    pair_id: str
    has_image: bool
    item_url: str
    image_url: str | None


class SearchResponse(BaseModel):
    kind: Literal["text", "image"]
    target: Literal["image", "text"]
    k: int
    took_ms: float
    hits: list[HitOut]
    note: str | None = Field(None, description="set when the model read nothing of the query")


class ItemOut(BaseModel):
    id: str
    modality: Literal["image", "text"]
    pair_id: str
    category: str | None
    title: str
    text: str
    source: str
    image_url: str | None
    paired_item_url: str | None


class HealthOut(BaseModel):
    status: str
    items: dict[str, int]
    collection: str | None
    dataset: str | None
    method: str | None
    image_search: bool
    limits: dict[str, int]


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorOut(BaseModel):
    error: ErrorDetail
