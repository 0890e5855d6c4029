"""gunicorn settings for production (``make serve-prod``), read from the environment.

- ``PORT`` (8000) and ``BIND_HOST`` (0.0.0.0): where to listen.
- ``WEB_CONCURRENCY`` (2): worker processes; each keeps its own copy of the search
  table in memory and follows the change log.
- ``GUNICORN_TIMEOUT`` (60): seconds before a stuck worker is replaced.
- The app is preloaded in the master (``preload_app``) and the workers are forked; each
  worker loads the search table before it takes requests (``post_worker_init``).

Several workers need shared rate-limit counters (``RATELIMIT_STORAGE_URI``): with the
in-memory default each worker would allow the whole limit, so start-up is refused.

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
# No request-line limit here: the app answers URLs over 4,094 bytes with 414 in the API's
# error shape (a proxy in front should still cap header sizes).
limit_request_line = 0
# A worker is replaced after this many requests (a guard against slow leaks). A new worker
# loads the search table and starts with an empty listing cache, so replacing one every few
# seconds at a thousand searches a second would cost more than it guards against.
max_requests = 200_000
max_requests_jitter = 20_000
accesslog = "-"
errorlog = "-"
access_log_format = '%(h)s "%(m)s %(U)s" %(s)s %(b)s %(M)sms'
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
wsgi_app = "referral:create_app()"
# The app is imported and made once in the master and the workers are forked from it:
# a node (and each worker that max_requests replaces) answers sooner, and the imported
# code is shared between the workers. Nothing connects or opens the index before the
# fork: engines, the search table and the text index are opened on first use in a worker.
preload_app = True


def post_worker_init(worker):
    """Load the search table in a new worker before it accepts a request (the first
    search would otherwise wait for it while other requests queue behind)."""
    from referral.services import warm_up

    if hasattr(worker.wsgi, "app_context"):  # the app (not gunicorn's error app)
        warm_up(worker.wsgi)


def on_starting(server):
    """Refuse to start several workers that would each count rate limits in their own
    memory (each would allow the whole limit): share the counters through Redis
    (``RATELIMIT_STORAGE_URI``), run one worker, or switch limits off."""
    from config import load_config

    settings = load_config(os.environ.get("REFERRAL_INSTANCE_PATH") or "instance")
    if (server.cfg.workers > 1 and settings["RATE_LIMITS"]
            and settings["RATELIMIT_STORAGE_URI"].startswith("memory")):
        raise SystemExit(
            f"{server.cfg.workers} workers would each keep their own rate-limit counters: "
            "set RATELIMIT_STORAGE_URI (e.g. redis://127.0.0.1:6379), run one worker "
            "(WEB_CONCURRENCY=1) or set RATE_LIMITS=off.")
