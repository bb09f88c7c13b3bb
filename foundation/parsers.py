"""A JSON parser that is strict about what a money API accepts.

DRF's JSONParser streams the raw request, which skips Django's
DATA_UPLOAD_MAX_MEMORY_SIZE check, accepts NaN/Infinity, and lets a deeply
nested document reach the recursion limit (a 500). This one reads
`request.body` (so the size cap applies), rejects non-standard constants,
bounds nesting depth before parsing, and requires a JSON object at the top.

It also refuses what JSON allows but no component behind it agrees on:

- a key repeated in one object, at any depth. Python keeps the last value; a
  proxy, WAF or log reader that keeps the first would see another request than
  the one the ledger executes.
- NUL and unpaired surrogates in any string or key. PostgreSQL text cannot hold
  NUL, and an unpaired surrogate cannot be encoded as UTF-8 at all, so each
  would fail (a 500) wherever the string is stored, hashed or echoed back.
"""

import json
import re
from typing import Any

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import BaseParser

# NUL, and any surrogate: a valid pair is decoded into one character, so one left over is unpaired.
_UNSAFE_CHARACTER = re.compile("[\x00\ud800-\udfff]")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _object_without_repeated_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                # json.dumps escapes the key, so a surrogate in it cannot break the error response.
                raise ValueError(f"the key {json.dumps(key)[:80]} appears more than once in an object")
            seen.add(key)
    return obj


def _refuse_unsafe_characters(value: Any) -> None:
    if isinstance(value, str):
        if _UNSAFE_CHARACTER.search(value):
            raise ValueError("strings must not contain NUL or unpaired surrogate characters")
    elif isinstance(value, dict):
        for key, item in value.items():
            _refuse_unsafe_characters(key)
            _refuse_unsafe_characters(item)
    elif isinstance(value, list):
        for item in value:
            _refuse_unsafe_characters(item)


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
    limit = settings.API_MAX_JSON_DEPTH
    # No deeper than the number of brackets that open it (counting those in strings too):
    # a typical body has one, so the character walk runs only for bodies with many.
    if text.count("{") + text.count("[") > limit and _max_depth(text) > limit:
        raise ParseError("JSON is nested too deeply.")
    data = json.loads(text, parse_constant=_reject_constant, object_pairs_hook=_object_without_repeated_keys)
    # Only a \u escape can produce NUL or a lone surrogate: the parser refuses raw control
    # characters in strings and the text is valid UTF-8. Most bodies have no escape at all.
    if "\\u" in text:
        _refuse_unsafe_characters(data)
    return data


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
