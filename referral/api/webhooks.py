"""The calling clinic's webhooks: endpoints, their delivery logs, and "send again"."""

from __future__ import annotations

from flask import g

from .. import webhooks
from ..auth import clinic_required
from ..schemas.paging import PageQuerySchema
from ..schemas.webhooks import (
    DeliveryPageSchema,
    DeliverySchema,
    NewWebhookSchema,
    WebhookCreateSchema,
    WebhookSchema,
)
from ..security import limit_writes
from . import Blueprint

blp = Blueprint("webhooks", __name__,
                description="Webhooks of the calling clinic (Standard Webhooks).")
blp.url_prefix = "/clinics/me/webhooks"
limit_writes(blp)

CLINIC_AUTH = [{"clinicToken": []}]
ID = "<int(min=1, max=2147483647):endpoint_id>"


@blp.route("", methods=["GET"])
@clinic_required
@blp.doc(security=CLINIC_AUTH)
@blp.response(200, WebhookSchema(many=True))
@blp.alt_response(401, description="Missing or bad clinic token.")
def list_webhooks():
    """The clinic's webhook endpoints (secrets are never shown again)."""
    return webhooks.clinic_endpoints(g.clinic)


@blp.route("", methods=["POST"])
@clinic_required
@blp.doc(security=CLINIC_AUTH)
@blp.arguments(WebhookCreateSchema)
@blp.response(201, NewWebhookSchema)
@blp.alt_response(401, description="Missing or bad clinic token.")
@blp.alt_response(409, description="The clinic has the most webhooks allowed.")
def create_webhook(values):
    """Add an endpoint; the signing secret is in this answer only."""
    endpoint, secret = webhooks.create_endpoint(g.clinic, values["url"],
                                                values.get("event_types"),
                                                values.get("description"))
    return {"id": endpoint.id, "url": endpoint.url, "event_types": endpoint.event_types,
            "description": endpoint.description, "created_at": endpoint.created_at,
            "secret": secret}


@blp.route(f"/{ID}", methods=["DELETE"])
@clinic_required
@blp.doc(security=CLINIC_AUTH)
@blp.response(200, WebhookSchema)
@blp.alt_response(401, description="Missing or bad clinic token.")
@blp.alt_response(404, description="Not one of the clinic's webhooks.")
def delete_webhook(endpoint_id):
    """Delete an endpoint: nothing more is sent to it."""
    return webhooks.delete_endpoint(g.clinic, endpoint_id)


@blp.route(f"/{ID}/deliveries", methods=["GET"])
@clinic_required
@blp.doc(security=CLINIC_AUTH)
@blp.arguments(PageQuerySchema, location="query")
@blp.response(200, DeliveryPageSchema)
@blp.alt_response(401, description="Missing or bad clinic token.")
@blp.alt_response(404, description="Not one of the clinic's webhooks.")
def deliveries(query, endpoint_id):
    """The endpoint's delivery log, newest first: status code, attempts, next try."""
    return webhooks.endpoint_deliveries(g.clinic, endpoint_id, query["page"],
                                        query["per_page"])


@blp.route(f"/{ID}/deliveries/<int(min=1, max=9223372036854775807):delivery_id>/retry",
           methods=["POST"])
@clinic_required
@blp.doc(security=CLINIC_AUTH)
@blp.response(202, DeliverySchema)
@blp.alt_response(401, description="Missing or bad clinic token.")
@blp.alt_response(404, description="Not a delivery of the clinic's webhook.")
@blp.alt_response(409, description="The delivery is being attempted right now.")
def send_again(endpoint_id, delivery_id):
    """Send this delivery again now (also after it was given up)."""
    return webhooks.send_again(g.clinic, endpoint_id, delivery_id)
