"""Request and response bodies of the search service (they make the OpenAPI document)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class TextQuery(BaseModel):
    query: str = Field(description="words to search for, e.g. 'naval battle in the pacific'")
    k: int = Field(10, description="how many results (1 to the service's max_k)")
    target: Literal["image", "text"] = Field("image", description="which items to rank")


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
