"""Marshmallow schemas, by domain (mirroring ``referral.api``): ``fields`` (shared field
types), ``paging``, ``listings`` (the one declaration of a listing's fields), ``clinics``,
``search`` (with the patient-location rules every search-like question shares),
``matching`` and ``referrals``.

Input schemas reject unknown fields; limits come from ``referral.limits``.
"""
