"""Reading one document's text: Wikipedia-style XML (often not well-formed) or plain UTF-8."""

from __future__ import annotations

import html
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from lxml import etree

TEXT_EXTENSIONS = (".xml", ".txt")
_TEXT_ELEMENT = re.compile(r"<text>(.*?)(?:</text>|\Z)", re.DOTALL | re.IGNORECASE)
_NAME_ATTRIBUTE = re.compile(r'<document[^>]*\bname="([^"]*)"', re.IGNORECASE)
_TAG = re.compile(r"<[^>]+>")


@dataclass(frozen=True)
class Document:
    """A document's text, its title (if the file names one), and whether it parsed cleanly."""

    text: str
    title: str
    well_formed: bool


def find_text_file(texts_dir: Path, text_id: str) -> Path | None:
    """``texts/<text_id>.xml`` or ``texts/<text_id>.txt``, whichever exists."""
    for ext in TEXT_EXTENSIONS:
        path = texts_dir / f"{text_id}{ext}"
        if path.is_file():
            return path
    return None


def read_document(path: Path) -> Document:
    """Read a text file; XML is parsed strictly first, then recovered when malformed.

    Malformed XML (bare ``&``, stray markup) is recovered by lxml's recovering parser; if that
    still loses the ``<text>`` element, the element's span is cut out by a regular expression
    and its markup stripped, so the words are never lost.
    """
    raw = path.read_bytes().decode("utf-8", errors="replace")
    if path.suffix.lower() != ".xml":
        return Document(text=raw.strip(), title="", well_formed=True)
    try:
        root = ET.fromstring(raw)
        return Document(_element_text(root), root.get("name", ""), well_formed=True)
    except ET.ParseError:
        pass
    parser = etree.XMLParser(recover=True, resolve_entities=False, no_network=True)
    root = etree.fromstring(raw.encode("utf-8"), parser)
    recovered = _element_text(root) if root is not None else ""
    fallback = _regex_text(raw)
    text = recovered if len(recovered) >= 0.9 * len(fallback) else fallback
    title_match = _NAME_ATTRIBUTE.search(raw)
    title = root.get("name", "") if root is not None else ""
    if not title and title_match:
        title = html.unescape(title_match.group(1))
    return Document(text=text, title=title, well_formed=False)


def _element_text(root: ET.Element | etree._Element) -> str:
    element = root.find("text")
    if element is None:
        return ""
    return "".join(element.itertext()).strip()


def _regex_text(raw: str) -> str:
    match = _TEXT_ELEMENT.search(raw)
    body = match.group(1) if match else raw
    return html.unescape(_TAG.sub(" ", body)).strip()
