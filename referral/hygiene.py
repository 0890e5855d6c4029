"""Request hygiene, in one place, before any view runs.

- **Body size, whatever the transfer encoding.** ``BodyLimit`` is a WSGI middleware
  around the Flask app. A body sent without ``Content-Length`` (``Transfer-Encoding:
  chunked``) is read into memory up to ``MAX_CONTENT_LENGTH + 1`` bytes: when it is
  longer, the request is marked too large (and the rest of the body, up to one more
  limit, is read and discarded so that the client gets the answer instead of a reset
  connection); otherwise the view sees an ordinary body with a ``Content-Length``. A
  declared ``Content-Length`` over the limit is marked too large without reading
  anything. Werkzeug alone would cut a chunked body at the limit and hand the view the
  first 5 MiB as if it were the whole upload (a bulk CSV was partly written that way).
- **Refusals come first.** ``_refuse_bad_bodies`` is the first ``before_request``
  function of the app, so a marked request answers 413 in the error shape before
  authentication, CSRF or any parsing; nothing is read or written.
- **JSON depth.** A JSON body nested deeper than ``MAX_JSON_DEPTH`` answers 422 in the
  error shape on every endpoint. It is checked once here, before the view, rather than
  in each of the two JSON loaders (webargs' ``parse_json`` for ``@arguments``, Flask's
  ``get_json`` for the bulk upload): one check covers every JSON endpoint, present and
  future, and neither loader can be reached with a body that would exhaust Python's
  recursion limit (``RecursionError``, formerly a 500). The body is parsed here once
  more than before (C speed; the walk that measures depth is iterative).
- **Development-server logs.** Werkzeug's request log lines (``referral run``) carry
  the path only: query strings hold patients' search words. gunicorn's access log is
  configured the same way in ``gunicorn.conf.py``.
"""

from __future__ import annotations

import io
import json
import logging
import re

from flask import Flask, current_app, request
from werkzeug.exceptions import RequestEntityTooLarge

from .errors import Invalid
from .limits import MAX_JSON_DEPTH

#: The environ key ``BodyLimit`` sets on a request whose body is over the limit.
BODY_TOO_LARGE = "referral.body_too_large"
_READ_SIZE = 64 * 1024


class BodyLimit:
    """WSGI middleware: bodies without a length are buffered up to the limit (module
    docstring); ``config`` is the app's configuration, read at each request."""

    def __init__(self, wsgi_app, config):
        self.wsgi_app = wsgi_app
        self.config = config

    def __call__(self, environ, start_response):
        limit = self.config.get("MAX_CONTENT_LENGTH")
        if limit is not None:
            bound_body(environ, limit)
        return self.wsgi_app(environ, start_response)


def _read_at_most(stream, size: int) -> bytes:
    """Up to ``size`` bytes of ``stream`` (fewer only at its end)."""
    parts, remaining = [], size
    while remaining > 0:
        part = stream.read(min(_READ_SIZE, remaining))
        if not part:
            break
        parts.append(part)
        remaining -= len(part)
    return b"".join(parts)


def _discard(stream, size: int) -> None:
    """Read and drop up to ``size`` more bytes of ``stream``."""
    while size > 0:
        part = stream.read(min(_READ_SIZE, size))
        if not part:
            return
        size -= len(part)


def bound_body(environ: dict, limit: int) -> None:
    """Make the request body of ``environ`` one of: a body of known length within
    ``limit``, or an empty body with ``BODY_TOO_LARGE`` set."""
    chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
    declared = environ.get("CONTENT_LENGTH")
    if not chunked and declared:
        try:
            too_large = int(declared) > limit
        except ValueError:
            return  # werkzeug reads a malformed length as 0
        if too_large:
            _replace_body(environ, b"", too_large=True)
        return
    if not chunked and not environ.get("wsgi.input_terminated"):
        return  # no length and no framing: the request has no body (RFC 9112 6.3)
    stream = environ["wsgi.input"]
    body = _read_at_most(stream, limit + 1)
    if len(body) > limit:
        _discard(stream, limit)
        _replace_body(environ, b"", too_large=True)
    else:
        _replace_body(environ, body)


def _replace_body(environ: dict, body: bytes, too_large: bool = False) -> None:
    environ["wsgi.input"] = io.BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))
    environ.pop("HTTP_TRANSFER_ENCODING", None)
    if too_large:
        environ[BODY_TOO_LARGE] = True


def json_too_deep(value, limit: int = MAX_JSON_DEPTH) -> bool:
    """True when decoded JSON nests arrays and objects more than ``limit`` levels deep
    (a scalar is depth 0, ``[]`` depth 1, ``[{}]`` depth 2); iterative, any size."""
    stack = [(value, 1)] if isinstance(value, (dict, list)) else []
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        children = node.values() if isinstance(node, dict) else node
        stack.extend((child, depth + 1) for child in children
                     if isinstance(child, (dict, list)))
    return False


def _refuse_bad_bodies():
    """413 for a body over the limit, 422 for JSON nested too deep; before anything else."""
    if request.environ.get(BODY_TOO_LARGE):
        limit = current_app.config["MAX_CONTENT_LENGTH"]
        raise RequestEntityTooLarge(
            f"The request body is larger than the limit of {limit:,} bytes; nothing was stored.")
    if request.is_json and request.content_length:
        try:
            too_deep = json_too_deep(json.loads(request.get_data(cache=True)))
        except RecursionError:
            too_deep = True
        except ValueError:
            return  # not JSON at all: the endpoint's own parser answers
        if too_deep:
            raise Invalid(f"The JSON body is nested more than {MAX_JSON_DEPTH} levels deep.",
                          {"json": [f"Nested more than {MAX_JSON_DEPTH} levels deep."]})


_QUERY = re.compile(r"(/[^\s?\"'\\]*)\?[^\s\"'\\]*")


class PathOnlyFilter(logging.Filter):
    """Drop query strings from log records: ``GET /?q=anxiety`` becomes ``GET /``."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record's message without query strings; always keep the record."""
        message = record.getMessage()
        cleaned = _QUERY.sub(r"\1", message)
        if cleaned != message:
            record.msg, record.args = cleaned, ()
        return True


def init_app(app: Flask) -> None:
    """Install the body limit, trust in proxy headers (``TRUSTED_PROXIES``), the body
    checks (first of all ``before_request`` functions) and the development server's
    path-only log on ``app``."""
    app.wsgi_app = BodyLimit(app.wsgi_app, app.config)
    if app.config["TRUSTED_PROXIES"]:
        # Behind N reverse proxies the client address (rate limits, reporters) and the
        # scheme and host of absolute links (FHIR paging, emails) come from their headers.
        from werkzeug.middleware.proxy_fix import ProxyFix

        hops = app.config["TRUSTED_PROXIES"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)
    app.before_request_funcs.setdefault(None, []).insert(0, _refuse_bad_bodies)
    werkzeug_log = logging.getLogger("werkzeug")
    if not any(isinstance(f, PathOnlyFilter) for f in werkzeug_log.filters):
        werkzeug_log.addFilter(PathOnlyFilter())
