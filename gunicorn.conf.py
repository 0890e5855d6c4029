"""gunicorn settings for production (``make serve-prod``), read from the environment.

- ``PORT`` (8000) and ``BIND_HOST`` (0.0.0.0): where to listen.
- ``WEB_CONCURRENCY`` (2): worker processes; each keeps its own copy of the search
  table in memory and follows the change log.
- ``GUNICORN_TIMEOUT`` (60): seconds before a stuck worker is replaced.

Access logs carry method, path and status only: no query strings (patients' search
words) and no bodies (referral data is never logged).

Answers say ``Server: referral``: no server name or version to fingerprint. gunicorn
writes the header itself from ``gunicorn.http.wsgi.SERVER`` (bound when that module
is imported), so the name is replaced there; workers are forked from this process.
"""

import os

import gunicorn.http.wsgi

gunicorn.http.wsgi.SERVER = "referral"

bind = f"{os.environ.get('BIND_HOST', '0.0.0.0')}:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = "sync"
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "60"))
graceful_timeout = 30
keepalive = 5
max_requests = 5000
max_requests_jitter = 500
accesslog = "-"
errorlog = "-"
access_log_format = '%(h)s "%(m)s %(U)s" %(s)s %(b)s %(M)sms'
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
wsgi_app = "referral:create_app()"
