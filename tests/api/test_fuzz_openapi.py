"""schemathesis against /api/v1/openapi.json: no 5xx, and every response as documented.

Every operation of the document gets generated requests (valid and invalid), sent
in process with a real clinic token; a failure names the operation and the case.
"""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import content_type_conformance, not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

from tests.conftest import bearer

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]


def test_every_operation_never_fails_and_keeps_its_document(app, make_clinic, create):
    _, token = make_clinic()
    create(token)
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15

    for operation in operations:
        @settings(max_examples=25, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy())
        def exercise(case):
            case.call_and_validate(headers=bearer(token), checks=CHECKS)

        exercise()
