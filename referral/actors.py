"""Who is acting in this request or command, for the audit trail and the activity log.

The API's token check, the pages' sign-in check, the importer and the CLI each say who
acts (``set_actor``); ``record_audit`` and ``log_activity`` read it (``current_actor``).
Without a declared actor, a request counts as the API and anything else as the CLI.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import g, has_app_context, has_request_context

#: The channels a change can come through (``link``: a one-click link from an email).
CHANNELS = ("page", "api", "import", "cli", "link")


@dataclass(frozen=True)
class Actor:
    """A person (``user_id``) or an API token (``token_id``) acting through ``channel``."""

    channel: str
    user_id: int | None = None
    token_id: int | None = None


def set_actor(actor: Actor) -> None:
    """Declare who acts for the rest of this request or app context."""
    g.actor = actor


def current_actor() -> Actor:
    """Who acts now (see the module docstring for the defaults)."""
    found = g.get("actor") if has_app_context() else None
    if found is not None:
        return found
    return Actor(channel="api" if has_request_context() else "cli")
