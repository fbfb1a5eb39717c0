"""The server against its own OpenAPI document: schemathesis generates valid and invalid
requests for every operation, in process, and runs all its checks on each answer (no 5xx,
documented statuses, headers and bodies, invalid data refused, valid data accepted, 405s
naming the allowed methods).

CI runs 25 examples per operation, the same ones every run. The full form, at least 100 per
operation and new examples each run::

    FGLAB_FUZZ_EXAMPLES=100 .venv/bin/pytest -q tests/service/test_schema_fuzz.py
"""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path

import numpy as np
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from PIL import Image

from fglab.retriever import Limits, Retriever
from fglab.service import create_app
from tests.index.fakes import FakePipeline, build_fake_index, decoding_upload_featurizer

EXAMPLES = int(os.environ.get("FGLAB_FUZZ_EXAMPLES", "25"))
#: Per example; the stand-in model answers in milliseconds, so this only catches hangs.
DEADLINE_MS = 5_000
#: Pillow modes written per upload type (16-bit, 32-bit and float ones included).
MODES = {
    "image/jpeg": ("JPEG", ("RGB", "L", "CMYK")),
    "image/png": ("PNG", ("RGB", "RGBA", "L", "P", "I;16")),
    "image/gif": ("GIF", ("P", "L")),
    "image/bmp": ("BMP", ("RGB", "L")),
    "image/webp": ("WEBP", ("RGB", "RGBA")),
    "image/tiff": ("TIFF", ("RGB", "L", "I", "F")),
}


def _image(pixels: np.ndarray, mode: str, fmt: str) -> bytes:
    gray = pixels.mean(axis=2)
    if mode == "I;16":
        image = Image.fromarray((gray * 257).astype(np.uint16))  # mode I;16
    elif mode == "I":
        image = Image.fromarray((gray * 257).astype(np.int32), "I")
    elif mode == "F":
        image = Image.fromarray((gray / 255).astype(np.float32), "F")
    else:
        image = Image.fromarray(pixels, "RGB").convert(mode)
    out = io.BytesIO()
    image.save(out, format=fmt)
    return out.getvalue()


def images(media_type: str) -> st.SearchStrategy[bytes]:
    """Files the schema's ``encoding`` admits: images of that type, at least 8 px a side
    (what the description says; JSON Schema cannot say what an image is)."""
    fmt, modes = MODES[media_type]
    side = st.integers(8, 48)
    pixels = st.builds(
        lambda w, h, seed: np.random.default_rng(seed).integers(0, 256, (h, w, 3), np.uint8),
        side, side, st.integers(0, 2**16),
    )
    return st.builds(_image, pixels, st.sampled_from(modes), st.just(fmt))


for _media_type in MODES:
    schemathesis.openapi.media_type(_media_type, images(_media_type))


def _app():
    """The service over the stand-in index (built once, in a folder removed at exit); the
    schema is loaded when the module is (schemathesis's fixture-based loading does not work
    with this pytest)."""
    index = build_fake_index(Path(_FOLDER.name))
    retriever = Retriever.open(
        index,
        FakePipeline.load,
        limits=Limits(max_image_bytes=200_000),
        featurizer=decoding_upload_featurizer,
    )
    # "testserver" is the Host schemathesis sends in process; a deployment names its own
    return create_app(retriever, hosts=["testserver"])


_FOLDER = tempfile.TemporaryDirectory(prefix="fglab-fuzz-")
schema = schemathesis.openapi.from_asgi("/openapi.json", _app())


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=DEADLINE_MS,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    derandomize="FGLAB_FUZZ_EXAMPLES" not in os.environ,
)
def test_the_server_keeps_to_its_openapi_document(case):
    case.call_and_validate()
