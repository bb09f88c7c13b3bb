"""A JSON parser that is strict about what a money API accepts.

DRF's JSONParser streams the raw request, which skips Django's
DATA_UPLOAD_MAX_MEMORY_SIZE check, accepts NaN/Infinity, and lets a deeply
nested document reach the recursion limit (a 500). This one reads
`request.body` (so the size cap applies), rejects non-standard constants,
bounds nesting depth before parsing, and requires a JSON object at the top.
"""

import json
from typing import Any

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import BaseParser


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _max_depth(raw: str) -> int:
    depth = deepest = 0
    in_string = escaped = False
    for char in raw:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def loads_strict(raw: bytes | str) -> Any:
    text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    if _max_depth(text) > settings.API_MAX_JSON_DEPTH:
        raise ParseError("JSON is nested too deeply.")
    return json.loads(text, parse_constant=_reject_constant)


class StrictJSONParser(BaseParser):
    media_type = "application/json"

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        request = (parser_context or {}).get("request")
        raw = request._request.body if request is not None else stream.read()
        if not raw:
            return {}
        try:
            data = loads_strict(raw)
        except ParseError:
            raise
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            raise ParseError(f"Malformed JSON: {exc}") from None
        if not isinstance(data, dict):
            raise ParseError("The request body must be a JSON object.")
        return data
