"""Clinic sign-up: the email confirmed through a link read from a real SMTP server, the
clinic waiting for an operator (nothing can be published), the operator's decision with a
reason (audited), and bad sign-ups refused with nothing written."""

from __future__ import annotations

import re

from referral.extensions import db
from referral.models import ActivityLog, Clinic, User
from tests.conftest import assert_error_shape, bearer
from tests.test_accounts import LINK, PASSWORD, sign_in
from tests.web.test_pages import csrf, text


def sign_up(client, **overrides):
    form = {"clinic_name": "Riverbend Psychology Group", "organization_npi": "",
            "phone": "(617) 555-0100", "email": "owner@riverbend.example",
            "password": PASSWORD, **overrides}
    return client.post("/clinic/sign-up", data={**form,
                                                "csrf_token": csrf(client, "/clinic/sign-up")})


def make_operator(runner, email="ops@directory.example"):
    result = runner.invoke(args=["operator", "create", email, "--password", PASSWORD])
    assert result.exit_code == 0, result.output
    return email


def test_sign_up_confirm_wait_and_operator_approval(app, mailing, smtp, runner, listing):
    client = mailing.test_client()
    answer = sign_up(client)
    assert answer.status_code == 200 and "We sent a confirmation link" in text(answer)
    (message,) = smtp.messages
    assert message["X-Envelope-To"] == "owner@riverbend.example"
    path = LINK.search(message.get_payload(decode=True).decode()).group(1)
    before = sign_in(client, "owner@riverbend.example")
    assert before.status_code == 403  # email not confirmed yet
    assert client.get(path).status_code == 302
    assert client.get(path).status_code == 410  # used
    assert sign_in(client, "owner@riverbend.example").status_code == 302
    home = text(client.get("/clinic"))
    assert "waiting for approval" in home
    # waiting: an API token works, but nothing can be published
    issued = client.post("/clinic/tokens", data={"csrf_token": csrf(client, "/clinic/tokens")})
    token = re.search(r'id="new-token">(mhd_[^<]+)<', text(issued)).group(1)
    refused = client.post("/api/v1/providers", json=listing(), headers=bearer(token))
    assert "waiting for approval" in assert_error_shape(refused, 403)["message"]
    bulk = client.post("/api/v1/providers/bulk", json=[listing()], headers=bearer(token))
    assert_error_shape(bulk, 403)

    operator = mailing.test_client()
    sign_in(operator, make_operator(runner))
    queue = text(operator.get("/operator"))
    assert "Riverbend Psychology Group" in queue and "owner@riverbend.example" in queue
    with mailing.app_context():
        clinic_id = db.session.query(Clinic).filter_by(status="pending").one().id
    url = f"/operator/clinics/{clinic_id}/decision"
    no_reason = operator.post(url, data={"decision": "reject",
                                         "csrf_token": csrf(operator, "/operator")},
                              follow_redirects=True)
    assert "Give a reason for rejecting" in text(no_reason)
    approved = operator.post(url, data={"decision": "approve", "reason": "NPI and phone match",
                                        "csrf_token": csrf(operator, "/operator")},
                             follow_redirects=True)
    assert "Riverbend Psychology Group is approved" in text(approved)
    assert client.post("/api/v1/providers", json=listing(),
                       headers=bearer(token)).status_code == 201
    # a clinic person cannot reach the operator pages; an operator is not a clinic
    assert client.get("/operator").status_code == 403
    assert operator.get("/clinic").headers["Location"].endswith("/operator")
    with mailing.app_context():
        decisions = db.session.query(ActivityLog).filter_by(action="clinic_approved").all()
        operator_id = db.session.query(User).filter_by(role="operator").one().id
        assert [(d.clinic_id, d.user_id, d.channel, d.details["reason"]) for d in decisions] \
            == [(clinic_id, operator_id, "page", "NPI and phone match")]


def test_rejection_is_shown_to_the_clinic(app, mailing, smtp, runner):
    client = mailing.test_client()
    sign_up(client, clinic_name="Dubious Clinic", email="d@dubious.example")
    client.get(LINK.search(smtp.messages[0].get_payload(decode=True).decode()).group(1))
    operator = mailing.test_client()
    sign_in(operator, make_operator(runner))
    with mailing.app_context():
        clinic_id = db.session.query(Clinic).filter_by(name="Dubious Clinic").one().id
    operator.post(f"/operator/clinics/{clinic_id}/decision", data={
        "decision": "reject", "reason": "No such practice at that address",
        "csrf_token": csrf(operator, "/operator")})
    again = operator.post(f"/operator/clinics/{clinic_id}/decision", data={
        "decision": "approve", "csrf_token": csrf(operator, "/operator")},
        follow_redirects=True)
    assert "was rejected already" in text(again)
    sign_in(client, "d@dubious.example")
    assert "No such practice at that address" in text(client.get("/clinic"))


def test_bad_sign_ups_write_nothing(app, make_clinic, client):
    clinic_id, _ = make_clinic("Taken NPI Clinic")
    with app.app_context():
        db.session.get(Clinic, clinic_id).organization_npi = "1234567893"
        db.session.commit()
    weak = sign_up(client, password="password1234")
    assert weak.status_code == 422 and "too common" in text(weak)
    short = sign_up(client, password="short")
    assert short.status_code == 422 and "at least 12" in text(short)
    bad_npi = sign_up(client, organization_npi="1234567890")
    assert bad_npi.status_code == 422 and "Not a valid NPI" in text(bad_npi)
    taken = sign_up(client, organization_npi="1234567893")
    assert taken.status_code == 409 and "ask its admin" in text(taken)
    bad_email = sign_up(client, email="owner-at-riverbend")
    assert bad_email.status_code == 422 and "Not an email address" in text(bad_email)
    bad_phone = sign_up(client, phone="12")
    assert bad_phone.status_code == 422 and "10 digits" in text(bad_phone)
    no_name = sign_up(client, clinic_name="  ")
    assert no_name.status_code == 422
    with app.app_context():
        assert db.session.query(Clinic).count() == 1 and db.session.query(User).count() == 0
    assert sign_up(client).status_code == 200
    duplicate = sign_up(client, clinic_name="Second Try")
    assert duplicate.status_code == 409 and "exists already" in text(duplicate)
    with app.app_context():
        assert db.session.query(Clinic).count() == 2 and db.session.query(User).count() == 1


def test_existing_clinics_count_as_approved(app, make_clinic, create):
    _, token = make_clinic()
    assert create(token)["id"]
    with app.app_context():
        assert db.session.query(Clinic).one().status == "approved"


def test_operator_cli_refuses_duplicates_and_weak_passwords(app, runner):
    make_operator(runner)
    again = runner.invoke(args=["operator", "create", "OPS@directory.example"])
    assert again.exit_code != 0 and "exists already" in again.output
    weak = runner.invoke(args=["operator", "create", "b@x.example", "--password", "password1234"])
    assert weak.exit_code != 0 and "too weak" in weak.output
    generated = runner.invoke(args=["operator", "create", "c@x.example"])
    assert generated.exit_code == 0 and "Password (shown once)" in generated.output


def test_demo_admin_command_creates_then_resets(app, make_clinic, runner):
    clinic_id, _ = make_clinic("Demo")
    args = ["user", "create", str(clinic_id), "admin@demo.example", "--role", "admin",
            "--or-reset"]
    first = runner.invoke(args=args)
    second = runner.invoke(args=args)
    assert first.exit_code == 0 and second.exit_code == 0
    passwords = [re.search(r"Password \(shown once\): (\S+)", r.output).group(1)
                 for r in (first, second)]
    assert passwords[0] != passwords[1]
    client = app.test_client()
    assert sign_in(client, "admin@demo.example", passwords[0]).status_code == 401
    assert sign_in(client, "admin@demo.example", passwords[1]).status_code == 302
