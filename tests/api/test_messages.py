"""The coordination thread: only the two clinics, encrypted at rest, never logged, never
in a notification."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import text

from referral.extensions import db
from tests.api.test_referrals import send
from tests.conftest import assert_error_shape, bearer

URL = "/api/v1/referrals"
SECRET_TEXT = "Started sertraline 50mg; ask about sleep (codeword quetzal-88)"


def test_both_clinics_write_and_read_the_thread(client, parties):
    referral_id = send(client, parties)["id"]
    url = f"{URL}/{referral_id}/messages"
    first = client.post(url, json={"text": "  Can you   see her this week?  "},
                        headers=bearer(parties["sender"]))
    assert first.status_code == 201
    assert first.json["text"] == "Can you see her this week?"  # cleaned like every field
    reply = client.post(url, json={"text": SECRET_TEXT}, headers=bearer(parties["receiver"]))
    assert reply.status_code == 201
    for token in (parties["sender"], parties["receiver"]):
        thread = client.get(url, headers=bearer(token)).json["items"]
        assert [m["text"] for m in thread] == ["Can you see her this week?", SECRET_TEXT]
        assert thread[0]["author_clinic_id"] != thread[1]["author_clinic_id"]
        assert all(m["created_at"] for m in thread)


def test_a_message_keeps_its_line_breaks(client, parties):
    referral_id = send(client, parties)["id"]
    url = f"{URL}/{referral_id}/messages"
    written = "Hi,\r\n\r\nShe can do   Tuesday or Thursday.\nThanks  "
    sent = client.post(url, json={"text": written}, headers=bearer(parties["sender"]))
    assert sent.status_code == 201
    kept = "Hi,\n\nShe can do Tuesday or Thursday.\nThanks"
    assert sent.json["text"] == kept
    thread = client.get(url, headers=bearer(parties["receiver"])).json["items"]
    assert [m["text"] for m in thread] == [kept]


def test_anyone_else_gets_404_and_nothing_is_written(app, client, parties):
    referral_id = send(client, parties)["id"]
    url = f"{URL}/{referral_id}/messages"
    assert_error_shape(client.get(url, headers=bearer(parties["outsider"])), 404)
    assert_error_shape(client.post(url, json={"text": "hi"},
                                   headers=bearer(parties["outsider"])), 404)
    assert_error_shape(client.get(f"{URL}/999999/messages",
                                  headers=bearer(parties["sender"])), 404)
    assert_error_shape(client.get(url), 401)
    with app.app_context():
        assert db.session.execute(text("SELECT count(*) FROM referral_message")).scalar() == 0


@pytest.mark.parametrize("body", [{}, {"text": ""}, {"text": "   "}, {"text": "x" * 4001},
                                  {"text": "bell\x07"}, {"text": 5},
                                  {"text": "ok", "author_clinic_id": 1}])
def test_bad_messages_are_422(client, parties, body):
    referral_id = send(client, parties)["id"]
    response = client.post(f"{URL}/{referral_id}/messages", json=body,
                           headers=bearer(parties["sender"]))
    assert_error_shape(response, 422)


def test_4000_characters_is_the_limit(client, parties):
    referral_id = send(client, parties)["id"]
    response = client.post(f"{URL}/{referral_id}/messages", json={"text": "y" * 4000},
                           headers=bearer(parties["sender"]))
    assert response.status_code == 201 and len(response.json["text"]) == 4000


def test_text_is_ciphertext_in_the_database_and_absent_from_logs_and_events(
        app, client, parties, caplog):
    caplog.set_level(logging.DEBUG)
    logging.getLogger("sqlalchemy.engine").setLevel(logging.INFO)
    try:
        referral_id = send(client, parties)["id"]
        client.post(f"{URL}/{referral_id}/messages", json={"text": SECRET_TEXT},
                    headers=bearer(parties["sender"]))
        client.post(f"{URL}/{referral_id}/status",
                    json={"status": "accepted", "note": SECRET_TEXT + " (note)"},
                    headers=bearer(parties["receiver"]))
        client.get(f"{URL}/{referral_id}/messages", headers=bearer(parties["receiver"]))
        client.post(f"{URL}/{referral_id}/messages", json={"text": SECRET_TEXT + "\x00"},
                    headers=bearer(parties["sender"]))  # refused: still not logged
    finally:
        logging.getLogger("sqlalchemy.engine").setLevel(logging.WARNING)
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "INSERT INTO referral_message" in logged
    assert "quetzal" not in logged and "sertraline" not in logged
    with app.app_context():
        stored = [row[0] for row in db.session.execute(
            text("SELECT ciphertext FROM referral_message ORDER BY id"))]
        assert len(stored) == 2
        assert all(value.startswith("gAAAA") and "quetzal" not in value for value in stored)
        everything = " ".join(str(row) for table in ("event", "delivery", "referral",
                                                     "referral_event")
                              for row in db.session.execute(text(f"SELECT * FROM {table}")))
        assert "quetzal" not in everything and "sertraline" not in everything
        types = [row[0] for row in db.session.execute(text("SELECT type FROM event ORDER BY id"))]
        assert types == ["referral.created", "referral.message", "referral.status_changed"]
    thread = client.get(f"{URL}/{referral_id}/messages",
                        headers=bearer(parties["sender"])).json["items"]
    assert [m["text"] for m in thread] == [SECRET_TEXT, SECRET_TEXT + " (note)"]


def test_rotate_keys_re_encrypts_every_message(app, database, client, parties, runner):
    from cryptography.fernet import Fernet

    from referral.crypto import Encryptor, keys_from_config
    from tests.conftest import make_app

    referral_id = send(client, parties)["id"]
    client.post(f"{URL}/{referral_id}/messages", json={"text": SECRET_TEXT},
                headers=bearer(parties["sender"]))
    old = keys_from_config(app.config)[0]
    new = Fernet.generate_key().decode()
    rotated = make_app(database, ENCRYPTION_KEYS=f"{new},{old}")
    result = rotated.test_cli_runner().invoke(args=["rotate-keys"])
    assert result.exit_code == 0 and "1 values re-encrypted" in result.output
    with app.app_context():
        stored = db.session.execute(text("SELECT ciphertext FROM referral_message")).scalar()
    assert Encryptor([new]).decrypt(stored) == SECRET_TEXT
    only_new = make_app(database, ENCRYPTION_KEYS=new).test_client()
    thread = only_new.get(f"{URL}/{referral_id}/messages",
                          headers=bearer(parties["receiver"])).json["items"]
    assert [m["text"] for m in thread] == [SECRET_TEXT]
