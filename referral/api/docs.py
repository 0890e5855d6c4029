"""What the OpenAPI document says beyond each view's own declaration, said once.

An apispec plugin adds to each operation the errors any request may meet (400 bad
JSON, 414 URL too long, 429 rate limit, 500, 503 database unavailable; 413 and 422
for operations with a body or parameters; 401 and 409 for a clinic's writes) and
gives each documented error response the one error schema, so the document matches
what the API sends. It also adds OpenAPI links from each created resource to the
operations on it (a client, or schemathesis' stateful tests, can follow them).
"""

from __future__ import annotations

from apispec import BasePlugin
from werkzeug.http import HTTP_STATUS_CODES

ERROR_REF = {"$ref": "#/components/schemas/Error"}

#: Errors any operation may answer, with what they mean here.
COMMON_ERRORS = {
    "400": "The body is not valid JSON.",
    "414": "The URL is longer than 4,094 bytes.",
    "429": "Too many requests from this client (or token); see Retry-After.",
    "500": "The server failed; nothing was changed.",
    "503": "The database is unavailable; try again after Retry-After seconds.",
}
WRITE_ERRORS = {
    "409": "Conflicts with the current state (another change was saved first, or the "
           "NPI is listed already); nothing was written.",
}
BODY_ERRORS = {
    "413": "The body is larger than MAX_CONTENT_LENGTH (whatever the transfer encoding).",
    "422": "The input is not valid: errors lists each field's problems.",
}


#: (path, method) of a creating operation -> links from its 201 answer: name ->
#: (target path, target method, path parameter filled with the created id).
LINKS = {
    ("/api/v1/providers", "post"): {
        "GetProvider": ("/api/v1/providers/{provider_id}", "get", "provider_id"),
        "ChangeProvider": ("/api/v1/providers/{provider_id}", "patch", "provider_id"),
        "DeactivateProvider": ("/api/v1/providers/{provider_id}", "delete", "provider_id"),
        "VerifyProvider": ("/api/v1/providers/{provider_id}/verify", "post", "provider_id"),
        "ProviderAudit": ("/api/v1/providers/{provider_id}/audit", "get", "provider_id"),
    },
    ("/api/v1/referrals", "post"): {
        "GetReferral": ("/api/v1/referrals/{referral_id}", "get", "referral_id"),
        "ChangeReferralStatus": ("/api/v1/referrals/{referral_id}/status", "post",
                                 "referral_id"),
    },
    ("/api/v1/clinics/me/tokens", "post"): {
        "RevokeToken": ("/api/v1/clinics/me/tokens/{token_id}", "delete", "token_id"),
    },
}


def _operation_ref(path: str, method: str) -> str:
    return "#/paths/" + path.replace("~", "~0").replace("/", "~1") + "/" + method


def _error_response(description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": ERROR_REF}}}


class ErrorResponsesPlugin(BasePlugin):
    """Documents the error answers of every operation with the error schema."""

    def operation_helper(self, path=None, operations=None, **kwargs):
        """Complete each operation's error responses (called once per path)."""
        for method, operation in (operations or {}).items():
            responses = operation.setdefault("responses", {})
            for code in [code for code in responses if not isinstance(code, str)]:
                responses[str(code)] = responses.pop(code)  # flask-smorest uses ints
            for code, response in list(responses.items()):
                if str(code)[0] in "45" and isinstance(response, dict) \
                        and "content" not in response and "schema" not in response:
                    responses[code] = _error_response(
                        response.get("description") or HTTP_STATUS_CODES[int(code)])
            extra = dict(COMMON_ERRORS)
            if operation.get("requestBody") or operation.get("parameters"):
                extra.update(BODY_ERRORS)
            if operation.get("security"):
                extra["401"] = "Missing or bad clinic token."
            if method in ("post", "patch", "put", "delete") and operation.get("security"):
                extra.update(WRITE_ERRORS)
            for code, description in extra.items():
                responses.setdefault(code, _error_response(description))
            links = LINKS.get((path, method))
            if links and "201" in responses:
                responses["201"]["links"] = {
                    name: {"operationRef": _operation_ref(target, target_method),
                           "parameters": {parameter: "$response.body#/id"}}
                    for name, (target, target_method, parameter) in links.items()}
