"""Clinic schemas: a clinic as it sees itself, and its API tokens."""

from __future__ import annotations

from marshmallow import RAISE, Schema, fields, validate

from .fields import CleanString


class ClinicSchema(Schema):
    """A clinic as shown to itself."""

    id = fields.Integer()
    name = fields.String()
    organization_npi = fields.String(allow_none=True)
    email = fields.String(allow_none=True)
    phone = fields.String(allow_none=True)
    created_at = fields.DateTime()


class TokenSchema(Schema):
    """A clinic API token as it is shown after creation: never the token itself."""

    id = fields.Integer()
    prefix = fields.String()
    label = fields.String(allow_none=True)
    created_at = fields.DateTime()
    last_used_at = fields.DateTime(allow_none=True)
    revoked_at = fields.DateTime(allow_none=True)


class TokenCreateSchema(Schema):
    """A new token's label."""

    class Meta:
        unknown = RAISE

    label = CleanString(allow_none=True, validate=validate.Length(max=100))


class NewTokenSchema(TokenSchema):
    """A new token, shown this once."""

    token = fields.String()
