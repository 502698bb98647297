"""The rules document (docs/mrr-rules.md), served so every definition can link to it.

Rendered without a Markdown library: headings become anchored headings, everything else
stays preformatted text (escaped by the template).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path

from flask import Blueprint, abort, render_template

rules = Blueprint("rules", __name__)

RULES_FILE = Path(__file__).resolve().parents[2] / "docs" / "mrr-rules.md"
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")


@dataclass(frozen=True, slots=True)
class Block:
    heading_level: int  # 0 for text
    text: str
    anchor: str = ""


def slug(text: str) -> str:
    """GitHub's heading anchors: lowercase, punctuation dropped, spaces to hyphens."""
    kept = re.sub(r"[^\w\- ]", "", text.lower())
    return kept.replace(" ", "-")


def blocks(markdown: str) -> list[Block]:
    found: list[Block] = []
    text: list[str] = []
    fenced = False
    for line in markdown.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        heading = None if fenced else _HEADING.match(line)
        if heading is None:
            text.append(line)
            continue
        if "".join(text).strip():
            found.append(Block(0, "\n".join(text).strip("\n")))
        text = []
        title = heading.group(2)
        found.append(Block(len(heading.group(1)), title, slug(title)))
    if "".join(text).strip():
        found.append(Block(0, "\n".join(text).strip("\n")))
    return found


@functools.cache
def _document() -> tuple[Block, ...] | None:
    try:
        return tuple(blocks(RULES_FILE.read_text(encoding="utf-8")))
    except FileNotFoundError:
        return None


def anchor_for(keyword: str) -> str:
    """The anchor of the first heading mentioning `keyword`, or '' (the document's top)."""
    for block in _document() or ():
        if block.heading_level and keyword.lower() in block.text.lower():
            return block.anchor
    return ""


@rules.get("/rules")
def rules_page() -> str:
    document = _document()
    if document is None:
        abort(404, "the rules document (docs/mrr-rules.md) is not installed here")
    return render_template("workspace/rules.html", blocks=document)
