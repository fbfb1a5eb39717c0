"""The search service: a FastAPI app over a retriever, with a web page."""

from fglab.service.app import create_app

__all__ = ["create_app"]
