"""The one-click "Still current" link of a reminder digest (``referral.reminders``).

Opening the link (GET) changes nothing: it shows the listing and a button, because email
scanners and link previews fetch links. Pressing the button (POST, CSRF-protected like
every form) verifies the listing once. No sign-in: the link's key is the permission, for
that listing only, once, until it expires.
"""

from __future__ import annotations

from flask import Blueprint, render_template, request

from .. import reminders
from ..errors import Conflict, Gone
from ..extensions import db

bp = Blueprint("reminders", __name__)

LINK = "/clinic/listings/<int(min=1, max=2147483647):provider_id>/still-current/<key>"


@bp.route(LINK, methods=["GET", "POST"])
def still_current(provider_id, key):
    """GET: the listing and the button; POST: verify it (the link is used up)."""
    try:
        link = reminders.live_link(provider_id, key)
    except Gone as error:
        db.session.rollback()
        return render_template("clinic/still_current.html", gone=error.message), 410
    provider = link.provider
    if request.method == "GET":
        return render_template("clinic/still_current.html", provider=provider, key=key)
    try:
        provider = reminders.confirm_still_current(provider_id, key)
    except Gone as error:
        return render_template("clinic/still_current.html", gone=error.message), 410
    except Conflict as error:
        return render_template("clinic/still_current.html", provider=provider, key=key,
                               error=error.message), 409
    return render_template("clinic/still_current.html", provider=provider, confirmed=True)
