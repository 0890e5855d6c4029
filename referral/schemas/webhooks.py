"""Webhook schemas: a new endpoint, an endpoint (its secret only when created), and the
delivery log."""

from __future__ import annotations

from marshmallow import RAISE, Schema, fields, validate

from ..events import EVENT_TYPES
from .fields import CleanString
from .paging import PageInfoSchema


class WebhookCreateSchema(Schema):
    """Where to post which events."""

    class Meta:
        unknown = RAISE

    url = CleanString(required=True, validate=validate.Length(max=2000), metadata={
        "description": "https (http only to loopback in development); public addresses only "
                       "in production."})
    event_types = fields.List(fields.String(validate=validate.OneOf(EVENT_TYPES)),
                              validate=validate.Length(min=1), metadata={
                                  "description": "Default: every type."})
    description = CleanString(allow_none=True, validate=validate.Length(max=200))


class WebhookSchema(Schema):
    """A webhook endpoint of the caller's clinic."""

    id = fields.Integer()
    url = fields.String()
    event_types = fields.List(fields.String())
    description = fields.String(allow_none=True)
    created_at = fields.DateTime()


class NewWebhookSchema(WebhookSchema):
    """A new endpoint with its signing secret (in this answer only)."""

    secret = fields.String(metadata={
        "description": "whsec_...: verify signatures with it (Standard Webhooks); shown once."})


class DeliverySchema(Schema):
    """One delivery of an event to the endpoint: how it went and when it is tried next."""

    id = fields.Integer()
    event_id = fields.Function(lambda d: d.event.public_id, metadata={
        "description": "The webhook-id header (the same on every attempt)."})
    event_type = fields.Function(lambda d: d.event.type)
    status = fields.String(metadata={
        "description": "pending, delivered, failed (gave up), cancelled."})
    attempts = fields.Integer()
    last_status_code = fields.Integer(allow_none=True)
    last_error = fields.String(allow_none=True)
    last_response = fields.String(allow_none=True, metadata={
        "description": "The start of the answer (1 KB at most)."})
    last_attempt_at = fields.DateTime(allow_none=True)
    next_attempt_at = fields.Function(
        lambda d: d.next_attempt_at.isoformat() if d.status == "pending" else None,
        metadata={"description": "When the next attempt is due (pending only)."})
    delivered_at = fields.DateTime(allow_none=True)
    created_at = fields.DateTime()


class DeliveryPageSchema(PageInfoSchema):
    """One page of an endpoint's delivery log, newest first."""

    items = fields.List(fields.Nested(DeliverySchema))
