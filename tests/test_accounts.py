"""People: passwords, sign-in and sign-out, limits per address and per account, reset
links read from a real SMTP server (single use, expiring), the TOTP second factor, roles
(staff cannot manage people), and which user or token acted on each audit row."""

from __future__ import annotations

import datetime as dt
import re

import pyotp
import pytest

from referral import accounts
from referral.errors import Conflict, Invalid
from referral.extensions import db
from referral.models import ActivityLog, Clinic, ProviderAudit, User, UserLink
from tests.conftest import bearer, make_app
from tests.web.test_pages import csrf, text

PASSWORD = "blue heron kettle 42"
LINK = re.compile(r"http://[^/\s]+(/clinic/(?:reset|confirm)/[A-Za-z0-9_-]+)")


def add_user(app, clinic_id, email, role="admin", password=PASSWORD, confirmed=True):
    with app.app_context():
        clinic = db.session.get(Clinic, clinic_id)
        user = accounts.create_user(clinic, email, role, password, confirmed=confirmed)
        db.session.commit()
        return user.id


def sign_in(client, email, password=PASSWORD, **extra):
    return client.post("/clinic/sign-in", data={
        "email": email, "password": password,
        "csrf_token": csrf(client, "/clinic/sign-in")}, **extra)


def test_weak_and_common_passwords_and_duplicate_emails_are_refused(app, make_clinic):
    clinic_id, _ = make_clinic()
    with app.app_context():
        clinic = db.session.get(Clinic, clinic_id)
        for weak in ("short pass", "password1234", "PASSWORD1234", "aaaaaaaaaaaaaaa"):
            with pytest.raises(Invalid) as error:
                accounts.create_user(clinic, "a@example.org", "staff", weak)
            assert "password" in error.value.errors
        with pytest.raises(Invalid):
            accounts.create_user(clinic, "not-an-email", "staff", PASSWORD)
        accounts.create_user(clinic, "A@Example.org", "staff", PASSWORD)
        db.session.commit()
        with pytest.raises(Conflict):
            accounts.create_user(clinic, "a@example.ORG ", "admin", PASSWORD)
        db.session.rollback()
        assert db.session.query(User).count() == 1
        stored = db.session.query(User).one()
        assert stored.email == "a@example.org" and stored.password_hash.startswith("$argon2id$")
        assert PASSWORD not in stored.password_hash


def test_sign_in_sign_out_and_wrong_passwords(app, make_clinic):
    clinic_id, _ = make_clinic("Lakeside")
    add_user(app, clinic_id, "admin@lakeside.example")
    add_user(app, clinic_id, "new@lakeside.example", confirmed=False)
    client = app.test_client()
    wrong = sign_in(client, "admin@lakeside.example", "not the password at all")
    assert wrong.status_code == 401 and "email or password is not right" in text(wrong)
    unknown = sign_in(client, "nobody@lakeside.example")
    assert unknown.status_code == 401 and "email or password is not right" in text(unknown)
    unconfirmed = sign_in(client, "new@lakeside.example")
    assert unconfirmed.status_code == 403 and "Confirm your email" in text(unconfirmed)
    assert client.get("/clinic").status_code == 302
    good = sign_in(client, "ADMIN@lakeside.example")
    assert good.status_code == 302 and good.headers["Location"].endswith("/clinic")
    assert "Lakeside" in text(client.get("/clinic"))
    client.post("/clinic/sign-out", data={"csrf_token": csrf(client, "/clinic")})
    assert client.get("/clinic").status_code == 302


def test_failed_sign_ins_are_limited_per_account_from_any_address(database, app, make_clinic):
    limited = make_app(database, RATE_LIMITS=True, RATELIMIT_ACCOUNT_FAILURES="3 per hour",
                       RATELIMIT_AUTH_FAILURES="100 per minute")
    clinic_id, _ = make_clinic()
    add_user(app, clinic_id, "target@example.org")
    client = limited.test_client()
    statuses = [sign_in(client, "target@example.org", f"guess number {n:04d}",
                        environ_base={"REMOTE_ADDR": f"127.0.1.{n}"}).status_code
                for n in range(3)]
    assert statuses == [401, 401, 401]
    blocked = sign_in(client, "target@example.org", environ_base={"REMOTE_ADDR": "127.0.1.99"})
    assert blocked.status_code == 429 and "Too many failed sign-ins to this account" in \
        text(blocked)
    add_user(app, clinic_id, "other@example.org")
    assert sign_in(client, "other@example.org",
                   environ_base={"REMOTE_ADDR": "127.0.1.99"}).status_code == 302


def test_failed_sign_ins_are_limited_per_address(database, app, make_clinic):
    limited = make_app(database, RATE_LIMITS=True, RATELIMIT_AUTH_FAILURES="2 per minute")
    clinic_id, _ = make_clinic()
    add_user(app, clinic_id, "x@example.org")
    client = limited.test_client()
    here = {"REMOTE_ADDR": "127.0.2.1"}
    for n in range(2):
        assert sign_in(client, f"u{n}@example.org", "wrong password x", environ_base=here
                       ).status_code == 401
    assert sign_in(client, "x@example.org", environ_base=here).status_code == 429


def test_reset_link_by_real_email_is_single_use_and_expires(app, mailing, make_clinic, smtp):
    clinic_id, _ = make_clinic()
    add_user(app, clinic_id, "forgot@example.org")
    client = mailing.test_client()
    asked = client.post("/clinic/reset", data={"email": "forgot@example.org",
                                               "csrf_token": csrf(client, "/clinic/reset")})
    assert asked.status_code == 200 and "If an account has that email" in text(asked)
    same = client.post("/clinic/reset", data={"email": "nobody@example.org",
                                              "csrf_token": csrf(client, "/clinic/reset")})
    assert text(same).count("If an account has that email") == 1
    assert [m["X-Envelope-To"] for m in smtp.messages] == ["forgot@example.org"]
    path = LINK.search(smtp.messages[0].get_payload(decode=True).decode()).group(1)
    assert client.get(path).status_code == 200
    weak = client.post(path, data={"password": "short", "password_again": "short",
                                   "csrf_token": csrf(client, path)})
    assert weak.status_code == 422 and "at least 12" in text(weak)
    new = "violet lantern orbit 7"
    done = client.post(path, data={"password": new, "password_again": new,
                                   "csrf_token": csrf(client, path)})
    assert done.status_code == 302
    assert client.get(path).status_code == 410  # used
    assert client.post(path, data={"password": "another fine pass", "password_again":
                                   "another fine pass", "csrf_token": csrf(client,
                                                                           "/clinic/sign-in")}
                       ).status_code == 410
    assert sign_in(client, "forgot@example.org").status_code == 401
    assert sign_in(client, "forgot@example.org", new).status_code == 302
    # a second link expires
    with mailing.app_context():
        user = accounts.user_by_email("forgot@example.org")
        key = accounts.new_link(user, "reset")
        db.session.commit()
        link = db.session.query(UserLink).filter_by(used_at=None).one()
        link.expires_at = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
        db.session.commit()
    expired = client.get(f"/clinic/reset/{key}")
    assert expired.status_code == 410 and "expired or was used" in text(expired)
    assert client.get("/clinic/reset/not-a-key").status_code == 410


def test_totp_second_factor(app, make_clinic):
    clinic_id, _ = make_clinic()
    add_user(app, clinic_id, "careful@example.org")
    client = app.test_client()
    sign_in(client, "careful@example.org")
    page = text(client.get("/clinic/security"))
    secret = re.search(r'id="totp-secret">([A-Z2-7]+)<', page).group(1)
    wrong = client.post("/clinic/security", data={"code": "000000",
                                                  "csrf_token": csrf(client, "/clinic/security")})
    assert wrong.status_code == 422
    enabling = pyotp.TOTP(secret).now()
    turned_on = client.post("/clinic/security", data={
        "code": enabling, "csrf_token": csrf(client, "/clinic/security")})
    assert turned_on.status_code == 302
    with app.app_context():
        stored = accounts.user_by_email("careful@example.org").totp_ciphertext
        assert stored and secret not in stored
    client.post("/clinic/sign-out", data={"csrf_token": csrf(client, "/clinic")})
    first = sign_in(client, "careful@example.org")
    assert first.headers["Location"].endswith("/clinic/sign-in/code")
    assert client.get("/clinic").status_code == 302  # not signed in yet
    bad = client.post("/clinic/sign-in/code", data={
        "code": "123456", "csrf_token": csrf(client, "/clinic/sign-in/code")})
    assert bad.status_code == 401
    # the code that turned the factor on is used up: the next step's code signs in
    used = client.post("/clinic/sign-in/code", data={
        "code": enabling, "csrf_token": csrf(client, "/clinic/sign-in/code")})
    assert used.status_code == 401
    good = client.post("/clinic/sign-in/code", data={
        "code": next_code(secret), "csrf_token": csrf(client, "/clinic/sign-in/code")})
    assert good.status_code == 302 and client.get("/clinic").status_code == 200


def next_code(secret: str) -> str:
    """The code of the next time step (accepted: one step of clock drift either side)."""
    totp = pyotp.TOTP(secret)
    return totp.generate_otp(totp.timecode(dt.datetime.now(dt.UTC)) + 1)


def test_a_totp_code_works_once_even_when_two_sign_ins_race(app, make_clinic):
    """A code seen over a shoulder or replayed from a captured request is refused: of two
    sign-ins with the same code at the same moment exactly one gets in."""
    import threading

    clinic_id, _ = make_clinic()
    add_user(app, clinic_id, "twice@example.org")
    secret = pyotp.random_base32()
    with app.app_context():
        accounts.enable_totp(accounts.user_by_email("twice@example.org"), secret,
                             pyotp.TOTP(secret).now())
    code = next_code(secret)
    clients = [app.test_client() for _ in range(2)]
    tokens = []
    for client in clients:
        assert sign_in(client, "twice@example.org").headers["Location"].endswith(
            "/clinic/sign-in/code")
        tokens.append(csrf(client, "/clinic/sign-in/code"))
    barrier, answers = threading.Barrier(2), []

    def submit(client, token):
        barrier.wait()
        answers.append(client.post("/clinic/sign-in/code",
                                   data={"code": code, "csrf_token": token}).status_code)

    threads = [threading.Thread(target=submit, args=pair)
               for pair in zip(clients, tokens, strict=True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(answers) == [302, 401]
    later = app.test_client()
    sign_in(later, "twice@example.org")
    replay = later.post("/clinic/sign-in/code", data={
        "code": code, "csrf_token": csrf(later, "/clinic/sign-in/code")})
    assert replay.status_code == 401


def test_staff_cannot_manage_people_or_tokens_admins_can(app, mailing, make_clinic, smtp):
    clinic_id, _ = make_clinic()
    add_user(app, clinic_id, "boss@example.org")
    add_user(app, clinic_id, "helper@example.org", role="staff")
    staff = mailing.test_client()
    sign_in(staff, "helper@example.org")
    assert staff.get("/clinic/users").status_code == 403
    assert staff.post("/clinic/users", data={"email": "x@example.org", "role": "admin",
                                             "csrf_token": csrf(staff, "/clinic")}
                      ).status_code == 403
    assert staff.get("/clinic/tokens").status_code == 403
    admin = mailing.test_client()
    sign_in(admin, "boss@example.org")
    added = admin.post("/clinic/users", data={"email": "new@example.org", "role": "staff",
                                              "csrf_token": csrf(admin, "/clinic/users")})
    assert added.status_code == 302
    assert [m["X-Envelope-To"] for m in smtp.messages] == ["new@example.org"]
    duplicate = admin.post("/clinic/users", data={"email": "NEW@example.org", "role": "staff",
                                                  "csrf_token": csrf(admin, "/clinic/users")})
    assert duplicate.status_code == 409 and "exists already" in text(duplicate)
    with app.app_context():
        boss = accounts.user_by_email("boss@example.org")
        assert db.session.query(User).count() == 3
        boss_id = boss.id
    # the last admin cannot be demoted
    admin.post(f"/clinic/users/{boss_id}", data={"action": "role", "role": "staff",
                                                 "csrf_token": csrf(admin, "/clinic/users")})
    with app.app_context():
        assert accounts.user_by_email("boss@example.org").role == "admin"
    issued = admin.post("/clinic/tokens", data={"label": "EHR", "csrf_token":
                                                csrf(admin, "/clinic/tokens")})
    token = re.search(r'id="new-token">(mhd_[^<]+)<', text(issued)).group(1)
    assert admin.get("/api/v1/clinics/me", headers=bearer(token)).json["id"] == clinic_id
    with app.app_context():
        actions = [row.action for row in db.session.query(ActivityLog).order_by(ActivityLog.id)]
        assert actions == ["user_added", "token_issued"]
        assert {row.channel for row in db.session.query(ActivityLog)} == {"page"}


def test_a_disabled_person_is_signed_out_everywhere(app, make_clinic):
    clinic_id, _ = make_clinic()
    add_user(app, clinic_id, "boss@example.org")
    leaver = add_user(app, clinic_id, "leaver@example.org", role="staff")
    browser = app.test_client()
    sign_in(browser, "leaver@example.org")
    assert browser.get("/clinic").status_code == 200
    admin = app.test_client()
    sign_in(admin, "boss@example.org")
    admin.post(f"/clinic/users/{leaver}", data={"action": "disable",
                                                "csrf_token": csrf(admin, "/clinic/users")})
    assert browser.get("/clinic").status_code == 302
    assert sign_in(app.test_client(), "leaver@example.org").status_code == 401


def test_audit_rows_say_which_user_or_token_acted_and_the_channel(app, make_clinic, create,
                                                                  runner, tmp_path, listing):
    clinic_id, token = make_clinic()
    user_id = add_user(app, clinic_id, "editor@example.org", role="staff")
    made = create(token)
    client = app.test_client()
    sign_in(client, "editor@example.org")
    client.post(f"/clinic/providers/{made['id']}/verify",
                data={"csrf_token": csrf(client, "/clinic")})
    from referral.listing_csv import rows_to_csv

    path = tmp_path / "rows.csv"
    path.write_text(rows_to_csv([listing(last_name="Cli")]))
    assert runner.invoke(args=["clinic", "upload", str(clinic_id), str(path)]).exit_code == 0
    with app.app_context():
        rows = db.session.query(ProviderAudit).order_by(ProviderAudit.id).all()
        seen = [(row.action, row.channel, row.user_id is not None, row.token_id is not None)
                for row in rows]
        assert seen == [("create", "api", False, True), ("verify", "page", True, False),
                        ("create", "cli", False, False)]
        assert rows[1].user_id == user_id


def test_reset_requests_are_limited_per_address(database, app, make_clinic, smtp):
    from config import mail_settings

    limited = make_app(database, RATE_LIMITS=True, RATELIMIT_AUTH_FAILURES="2 per minute",
                       SMTP_URL=smtp.url, **mail_settings(smtp.url, "dir@example.org"))
    clinic_id, _ = make_clinic()
    add_user(app, clinic_id, "victim@example.org")
    client = limited.test_client()
    here = {"REMOTE_ADDR": "127.0.3.1"}
    statuses = [client.post("/clinic/reset", environ_base=here, data={
        "email": "victim@example.org", "csrf_token": csrf(client, "/clinic/reset")}).status_code
        for _ in range(3)]
    assert statuses == [200, 200, 429]
    assert len(smtp.messages) == 2
