"""Clinic webhooks: endpoints (URL checks against SSRF), Standard Webhooks signing, and
one HTTP attempt with a short timeout.

Payloads follow the Standard Webhooks specification: headers ``webhook-id`` (the same
on every retry: receivers deduplicate by it), ``webhook-timestamp`` and
``webhook-signature``, signed with the ``standardwebhooks`` package; the body is
``{"type", "timestamp", "data"}`` with ids and statuses only.

URLs: ``https`` in production, to public addresses only (the host is resolved, and
every address must be global; private, loopback, link-local, shared and reserved
addresses are refused); in development also ``http`` to loopback. The address is
resolved and checked again before every attempt, and the connection goes to the
checked address (no DNS rebinding). Redirects are not followed. At most 1 KB of an
answer is kept.
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import json
import secrets
import socket
import threading
from dataclasses import dataclass
from urllib.parse import urlsplit

import urllib3
from sqlalchemy import select
from standardwebhooks.webhooks import Webhook

from .crypto import encryptor
from .errors import Conflict, Invalid, NotFound
from .events import EVENT_TYPES
from .extensions import db
from .limits import MAX_WEBHOOKS_PER_CLINIC
from .models import Clinic, Delivery, WebhookEndpoint, utcnow

#: Most bytes of an answer kept in the delivery log.
MAX_RESPONSE_KEPT = 1024
USER_AGENT = "referral-directory-webhooks/1"


class UnsafeUrl(ValueError):
    """A webhook URL that may not be called (scheme, address or form)."""


def new_secret() -> str:
    """A signing secret in the Standard Webhooks form (``whsec_`` + base64 of 24 bytes)."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode("ascii")


def _addresses(host: str, port: int) -> list[ipaddress._BaseAddress]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as error:
        raise UnsafeUrl(f"The host {host!r} cannot be resolved.") from error
    found = []
    for info in infos:
        address = ipaddress.ip_address(info[4][0].split("%")[0])
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped
        found.append(address)
    return list(dict.fromkeys(found))


def is_public(address) -> bool:
    """A global unicast address (not private, loopback, link-local, shared or reserved)."""
    return (address.is_global and not address.is_multicast and not address.is_reserved
            and not address.is_loopback and not address.is_link_local)


@dataclass(frozen=True)
class Target:
    """Where one attempt connects: the checked address, and the URL's host for TLS and Host."""

    scheme: str
    host: str
    port: int
    address: str
    path: str


def check_url(url: str, production: bool) -> Target:
    """Resolve and check a webhook URL; raise ``UnsafeUrl`` with the reason."""
    if len(url) > 2000:
        raise UnsafeUrl("The URL is longer than 2,000 characters.")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise UnsafeUrl("Not a URL.") from error
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise UnsafeUrl("The URL must be https://host/path.")
    if parts.username or parts.password:
        raise UnsafeUrl("The URL must not contain a user name or password.")
    if parts.fragment:
        raise UnsafeUrl("The URL must not contain a fragment (#...).")
    host = parts.hostname
    port = port or (443 if parts.scheme == "https" else 80)
    addresses = _addresses(host, port)
    if not addresses:
        raise UnsafeUrl(f"The host {host!r} has no address.")
    if production:
        if parts.scheme != "https":
            raise UnsafeUrl("Webhook URLs must use https.")
        bad = [str(a) for a in addresses if not is_public(a)]
        if bad:
            raise UnsafeUrl(f"The host {host!r} resolves to a private or reserved address "
                            f"({', '.join(bad)}); webhooks go to public addresses only.")
    elif parts.scheme == "http" and not all(a.is_loopback for a in addresses):
        raise UnsafeUrl("Plain http is allowed only to this machine (loopback) in "
                        "development; use https.")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return Target(parts.scheme, host, port, str(addresses[0]), path)


# ---------------------------------------------------------------------------
# Endpoints of a clinic


def _production() -> bool:
    from flask import current_app

    return current_app.config["REFERRAL_ENV"] == "production"


def create_endpoint(clinic: Clinic, url: str, event_types: list[str] | None,
                    description: str | None = None) -> tuple[WebhookEndpoint, str]:
    """Add a webhook endpoint; return it and its secret (shown this once)."""
    try:
        check_url(url, _production())
    except UnsafeUrl as error:
        raise Invalid("This webhook URL cannot be used.", {"url": [str(error)]}) from None
    active = db.session.scalar(
        select(db.func.count()).select_from(WebhookEndpoint)
        .where(WebhookEndpoint.clinic_id == clinic.id, WebhookEndpoint.deleted_at.is_(None)))
    if active >= MAX_WEBHOOKS_PER_CLINIC:
        raise Conflict(f"A clinic has at most {MAX_WEBHOOKS_PER_CLINIC} webhooks; delete one "
                       "first.")
    secret = new_secret()
    endpoint = WebhookEndpoint(clinic_id=clinic.id, url=url,
                               event_types=list(event_types or EVENT_TYPES),
                               secret_ciphertext=encryptor().encrypt(secret),
                               description=description)
    db.session.add(endpoint)
    db.session.commit()
    return endpoint, secret


def clinic_endpoints(clinic: Clinic) -> list[WebhookEndpoint]:
    """The clinic's webhook endpoints (not deleted), oldest first."""
    return list(db.session.scalars(
        select(WebhookEndpoint).where(WebhookEndpoint.clinic_id == clinic.id,
                                      WebhookEndpoint.deleted_at.is_(None))
        .order_by(WebhookEndpoint.id)))


def clinic_endpoint(clinic: Clinic, endpoint_id: int) -> WebhookEndpoint:
    """One of the clinic's endpoints; another clinic's or a deleted one is not found."""
    endpoint = db.session.get(WebhookEndpoint, endpoint_id)
    if endpoint is None or endpoint.clinic_id != clinic.id or endpoint.deleted_at is not None:
        raise NotFound(f"Your clinic has no webhook {endpoint_id}.")
    return endpoint


def delete_endpoint(clinic: Clinic, endpoint_id: int) -> WebhookEndpoint:
    """Delete an endpoint: nothing more is sent to it (pending deliveries are cancelled)."""
    endpoint = clinic_endpoint(clinic, endpoint_id)
    endpoint.deleted_at = utcnow()
    db.session.execute(Delivery.__table__.update()
                       .where(Delivery.endpoint_id == endpoint.id,
                              Delivery.status == "pending")
                       .values(status="cancelled", lease_owner=None, lease_until=None))
    db.session.commit()
    return endpoint


def endpoint_deliveries(clinic: Clinic, endpoint_id: int, page: int, per_page: int) -> dict:
    """The delivery log of one endpoint, newest first, paginated."""
    from .listings import paginate

    endpoint = clinic_endpoint(clinic, endpoint_id)
    query = (select(Delivery).where(Delivery.endpoint_id == endpoint.id)
             .order_by(Delivery.id.desc()))
    return paginate(query, page, per_page)


def send_again(clinic: Clinic, endpoint_id: int, delivery_id: int) -> Delivery:
    """Queue a delivery of this endpoint for another attempt now ("send again")."""
    endpoint = clinic_endpoint(clinic, endpoint_id)
    delivery = db.session.get(Delivery, delivery_id)
    if delivery is None or delivery.endpoint_id != endpoint.id:
        raise NotFound(f"Webhook {endpoint_id} has no delivery {delivery_id}.")
    if delivery.status == "pending" and delivery.lease_until is not None \
            and delivery.lease_until > utcnow():
        raise Conflict("This delivery is being attempted right now.")
    delivery.status = "pending"
    delivery.next_attempt_at = utcnow()
    db.session.commit()
    return delivery


# ---------------------------------------------------------------------------
# One attempt


def payload(event_type: str, created_at: dt.datetime, data: dict) -> bytes:
    """The body posted for an event: type, time and ids/statuses only."""
    body = {"type": event_type,
            "timestamp": created_at.astimezone(dt.UTC).isoformat().replace("+00:00", "Z"),
            "data": data}
    return json.dumps(body, separators=(",", ":"), sort_keys=True).encode("utf-8")


def signed_headers(secret: str, message_id: str, body: bytes,
                   now: dt.datetime | None = None) -> dict[str, str]:
    """The Standard Webhooks headers for one attempt, signed with ``standardwebhooks``."""
    now = now or dt.datetime.now(dt.UTC)
    signature = Webhook(secret).sign(msg_id=message_id, timestamp=now,
                                     data=body.decode("utf-8"))
    return {"webhook-id": message_id, "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": signature, "content-type": "application/json",
            "user-agent": USER_AGENT}


@dataclass
class Outcome:
    """What one attempt found: success, the status code, a short error, the answer's start."""

    ok: bool
    status_code: int | None = None
    error: str | None = None
    response: str | None = None


class Sender:
    """Posts signed payloads; keeps one connection pool per checked address (thread-safe)."""

    def __init__(self, timeout: float, production: bool):
        self.timeout = urllib3.Timeout(connect=timeout, read=timeout)
        self.total = timeout
        self.production = production
        self._pools: dict[tuple, urllib3.connectionpool.HTTPConnectionPool] = {}
        self._lock = threading.Lock()

    def _pool(self, target: Target):
        key = (target.scheme, target.address, target.port, target.host)
        with self._lock:
            pool = self._pools.get(key)
            if pool is None:
                if target.scheme == "https":
                    pool = urllib3.HTTPSConnectionPool(
                        target.address, target.port, maxsize=8, block=False,
                        timeout=self.timeout, retries=False, server_hostname=target.host,
                        assert_hostname=target.host, cert_reqs="CERT_REQUIRED")
                else:
                    pool = urllib3.HTTPConnectionPool(target.address, target.port, maxsize=8,
                                                      block=False, timeout=self.timeout,
                                                      retries=False)
                self._pools[key] = pool
            return pool

    def post(self, url: str, body: bytes, headers: dict[str, str]) -> Outcome:
        """One attempt: resolve and check the URL, post, read at most 1 KB of the answer."""
        try:
            target = check_url(url, self.production)
        except UnsafeUrl as error:
            return Outcome(False, error=str(error)[:200])
        host = target.host if ":" not in target.host else f"[{target.host}]"
        default_port = 443 if target.scheme == "https" else 80
        host_header = host if target.port == default_port else f"{host}:{target.port}"
        try:
            response = self._pool(target).urlopen(
                "POST", target.path, body=body, headers={**headers, "host": host_header},
                redirect=False, preload_content=False, assert_same_host=False,
                timeout=self.timeout)
        except urllib3.exceptions.HTTPError as error:
            return Outcome(False, error=f"{type(error).__name__}: {error}"[:200])
        try:
            start = response.read(MAX_RESPONSE_KEPT + 1)
        except urllib3.exceptions.HTTPError as error:
            response.close()
            return Outcome(False, status_code=response.status,
                           error=f"{type(error).__name__}"[:200])
        if len(start) > MAX_RESPONSE_KEPT:
            response.close()  # the rest is not read: drop the connection
        else:
            response.release_conn()
        text = start[:MAX_RESPONSE_KEPT].decode("utf-8", "replace")[:MAX_RESPONSE_KEPT]
        ok = 200 <= response.status < 300
        return Outcome(ok, status_code=response.status,
                       error=None if ok else f"HTTP {response.status}", response=text or None)

    def close(self) -> None:
        """Close every pool."""
        with self._lock:
            for pool in self._pools.values():
                pool.close()
            self._pools.clear()
