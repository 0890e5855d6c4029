"""The app's JSON answers, encoded by orjson.

A search answer is about 25 KB of JSON (20 full listings); Python's ``json`` encoder
took 6% of a gunicorn worker's time (py-spy, 100,000 listings), orjson (C) under 1%. The
answer is the same JSON value as before: the same keys in the same order (Flask's
``sort_keys`` is honoured), the same numbers (the shortest text that reads back as the
same float, as Python writes it) and the same strings, written as UTF-8 rather than
``\\u`` escapes (Flask's ``ensure_ascii``); dates go through Flask's own ``default``
(HTTP dates), as do dataclasses and anything else orjson would write its own way.
A value orjson cannot write (an integer past 64 bits, a numpy number) is encoded by
Flask's provider as before. One difference: a float NaN or infinity, which no answer
holds, would be written ``null`` (valid JSON) rather than Python's ``NaN`` (not JSON).
Debug mode keeps Flask's indented output.
"""

from __future__ import annotations

import typing as t

import orjson
from flask.json.provider import DefaultJSONProvider

#: Types orjson would write its own way: handed to Flask's ``default`` instead.
_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


class OrjsonProvider(DefaultJSONProvider):
    """Flask's JSON provider whose compact ``response`` bodies orjson encodes."""

    def response(self, *args: t.Any, **kwargs: t.Any):
        """The answer as ``application/json`` (with a final newline, as Flask writes it)."""
        if self.compact is False or (self.compact is None and self._app.debug):
            return super().response(*args, **kwargs)
        obj = self._prepare_response_obj(args, kwargs)
        body = encode(obj, sort_keys=self.sort_keys)
        if body is None:
            return super().response(*args, **kwargs)
        return self._app.response_class(body, mimetype=self.mimetype)


def encode(obj: t.Any, sort_keys: bool = False) -> bytes | None:
    """``obj`` as compact JSON bytes ending in a newline, or None when orjson cannot
    write it exactly as Flask's provider would (the caller then uses that one)."""
    options = _OPTIONS | orjson.OPT_APPEND_NEWLINE
    if sort_keys:
        options |= orjson.OPT_SORT_KEYS
    try:
        return orjson.dumps(obj, default=DefaultJSONProvider.default, option=options)
    except TypeError:  # orjson.JSONEncodeError: a type or value it does not write
        return None
