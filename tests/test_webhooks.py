"""Unit tests of webhook URL checks (SSRF), Standard Webhooks signing and encryption."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from cryptography.fernet import Fernet
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from referral.crypto import Encryptor, InvalidToken, keys_from_config
from referral.webhooks import UnsafeUrl, check_url, new_secret, payload, signed_headers


@pytest.mark.parametrize("url", [
    "http://93.184.216.34/hook",        # http in production
    "https://127.0.0.1/hook",           # loopback
    "https://10.1.2.3/hook",            # private
    "https://172.16.0.9/hook", "https://192.168.1.1/hook",
    "https://169.254.169.254/latest/meta-data",  # link-local (cloud metadata)
    "https://100.64.0.1/hook",          # shared address space
    "https://0.0.0.0/hook", "https://[::1]/hook", "https://[fe80::1]/hook",
    "https://[fd00::1]/hook", "https://[::ffff:10.0.0.1]/hook",
    "https://localhost/hook",
    "ftp://93.184.216.34/hook", "https:///nohost", "https://user:pw@93.184.216.34/",
    "https://93.184.216.34:99999/", "https://93.184.216.34/#frag",
])
def test_production_refuses_unsafe_urls(url):
    with pytest.raises(UnsafeUrl):
        check_url(url, production=True)


def test_production_accepts_https_to_a_public_address_and_pins_it():
    target = check_url("https://93.184.216.34:8443/hooks/in?x=1", production=True)
    assert (target.scheme, target.address, target.port, target.path) == (
        "https", "93.184.216.34", 8443, "/hooks/in?x=1")


def test_development_allows_http_only_to_loopback():
    assert check_url("http://127.0.0.1:9000/h", production=False).address == "127.0.0.1"
    assert check_url("http://localhost:9000/h", production=False).address in ("127.0.0.1",
                                                                              "::1")
    with pytest.raises(UnsafeUrl, match="loopback"):
        check_url("http://93.184.216.34/h", production=False)
    assert check_url("https://10.0.0.5/h", production=False).address == "10.0.0.5"


def test_signatures_verify_with_the_standardwebhooks_package():
    secret = new_secret()
    body = payload("referral.created", dt.datetime(2026, 1, 2, tzinfo=dt.UTC),
                   {"referral_id": 7, "status": "requested"})
    headers = signed_headers(secret, "msg_abc", body)
    assert Webhook(secret).verify(body, headers) == {
        "type": "referral.created", "timestamp": "2026-01-02T00:00:00Z",
        "data": {"referral_id": 7, "status": "requested"}}
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(body, headers)
    tampered = json.dumps({**json.loads(body), "data": {"referral_id": 8}}).encode()
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(tampered, headers)


def test_multifernet_rotation_keeps_old_ciphertexts_readable():
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    before = Encryptor([old]).encrypt("Patient prefers mornings")
    rotated = Encryptor([new, old])
    assert rotated.decrypt(before) == "Patient prefers mornings"
    again = rotated.rotate(before)
    assert Encryptor([new]).decrypt(again) == "Patient prefers mornings"
    with pytest.raises(InvalidToken):
        Encryptor([new]).decrypt(before)


def test_development_derives_a_key_and_configured_keys_win():
    derived = keys_from_config({"ENCRYPTION_KEYS": "", "SECRET_KEY": "dev"})
    assert len(derived) == 1 and Encryptor(derived).decrypt(Encryptor(derived).encrypt("x")) == "x"
    key = Fernet.generate_key().decode()
    assert keys_from_config({"ENCRYPTION_KEYS": f" {key} ,", "SECRET_KEY": "dev"}) == [key]
