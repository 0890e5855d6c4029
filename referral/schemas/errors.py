"""The one error shape of the API, as a schema for the OpenAPI document."""

from __future__ import annotations

from marshmallow import INCLUDE, Schema, fields


class RowErrorSchema(Schema):
    """One problem of one uploaded row (rows numbered from 1)."""

    row = fields.Integer(metadata={"description": "1 is the first row after a CSV header."})
    field = fields.String(metadata={"description": "The listing field, or _row."})
    message = fields.String()


class ErrorSchema(Schema):
    """Every error answer: the HTTP status, its name, a sentence for a person, details."""

    code = fields.Integer(required=True)
    status = fields.String(required=True)
    message = fields.String(required=True)
    errors = fields.Dict(required=True, metadata={
        "description": "Details: per location and field for validation errors "
                       "(`{\"json\": {\"fee_min\": [\"...\"]}}`), `rows` for a bulk upload."})


class BulkErrorsSchema(Schema):
    """The details of a refused bulk upload: every row's problems, or what is wrong with
    the upload as a whole (its CSV header, the file, the JSON)."""

    class Meta:
        unknown = INCLUDE

    rows = fields.List(fields.Nested(RowErrorSchema))
    header = fields.List(fields.String())
    file = fields.List(fields.String())
    json = fields.List(fields.String())


class BulkErrorSchema(ErrorSchema):
    """A refused bulk upload: every row's problems; nothing was written."""

    errors = fields.Nested(BulkErrorsSchema, required=True)
