"""A read-only, public FHIR R4 API under ``/fhir`` speaking HL7 Da Vinci PDex Plan-Net.

Built from the same database as the JSON API (SQLAlchemy queries on ``provider``
and ``clinic``; it does not use the search index): ``GET /fhir/metadata`` (the
CapabilityStatement), read and search of Practitioner, PractitionerRole,
Organization, Location and HealthcareService, and our CodeSystems and extension
StructureDefinitions. Answers are ``application/fhir+json``; errors are
OperationOutcome resources. See ``docs/fhir.md`` for how resources map to listings.

Modules: ``terms`` (URLs and codes), ``visibility`` (what is public), ``resources``
(resource builders), ``params`` (reading search parameters), ``kinds`` (search
parameters as SQL, includes, loading), ``paging`` (running a search, stable paging,
the Bundle), ``capability`` (CapabilityStatement, CodeSystems, StructureDefinitions),
``views`` (the blueprint), ``outcome`` (OperationOutcome), ``sql`` (portable SQL).
"""

from __future__ import annotations

from flask import Flask


def register_fhir(app: Flask) -> None:
    """Attach the ``/fhir`` blueprint; it reads no cookies, so CSRF protection is off for it."""
    from .views import fhir

    app.register_blueprint(fhir)
    csrf = app.extensions.get("csrf")
    if csrf is not None:
        csrf.exempt(fhir)
