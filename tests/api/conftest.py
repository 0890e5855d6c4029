"""Fixtures shared by the API tests: the referral ``parties`` (two clinics and an outsider,
with a therapist and a prescriber), defined in ``test_referrals``."""

from tests.api.test_referrals import parties  # noqa: F401 - a fixture, shared here
