"""Real local receivers for notification tests: an HTTP webhook receiver that verifies
Standard Webhooks signatures with the ``standardwebhooks`` package, and an SMTP server
(``aiosmtpd``), both on free loopback ports."""

from __future__ import annotations

import email
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


class WebhookReceiver:
    """An HTTP server on 127.0.0.1 recording every request it gets.

    ``secrets`` maps a path to the signing secret of the endpoint posting there;
    ``answer(webhook_id, attempt_number) -> status`` decides each answer (default 200);
    ``delay`` seconds are spent before answering; ``body`` is sent as the answer.
    Receptions with a verified signature are processed once per ``webhook-id``
    (``processed``), as a real receiver deduplicates.
    """

    def __init__(self, answer=None, delay: float = 0.0, body: bytes = b"ok"):
        self.secrets: dict[str, str] = {}
        self.answer = answer or (lambda webhook_id, attempt: 200)
        self.delay = delay
        self.body = body
        self.received: list[dict] = []
        self.processed: dict[str, dict] = {}
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's naming
                length = int(self.headers.get("Content-Length", 0))
                data = self.rfile.read(length)
                receiver._handle(self, data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str = "/hook") -> str:
        """The URL of a path on this receiver."""
        return f"http://127.0.0.1:{self.server.server_port}{path}"

    def _handle(self, handler, data: bytes) -> None:
        headers = {key.lower(): value for key, value in handler.headers.items()}
        secret = self.secrets.get(handler.path)
        verified = False
        if secret:
            try:
                Webhook(secret).verify(data, headers)
                verified = True
            except WebhookVerificationError:
                verified = False
        webhook_id = headers.get("webhook-id")
        with self._lock:
            attempt = sum(1 for r in self.received if r["webhook_id"] == webhook_id) + 1
            entry = {"path": handler.path, "webhook_id": webhook_id, "verified": verified,
                     "body": json.loads(data), "headers": headers, "at": time.time(),
                     "attempt": attempt}
            self.received.append(entry)
        if self.delay:
            time.sleep(self.delay)
        status = self.answer(webhook_id, attempt)
        if status < 300 and verified:
            with self._lock:
                self.processed.setdefault(webhook_id, entry)
        handler.send_response(status)
        handler.send_header("Content-Length", str(len(self.body)))
        handler.end_headers()
        handler.wfile.write(self.body)

    def close(self) -> None:
        """Stop the server."""
        self.server.shutdown()
        self.server.server_close()


class SmtpSink:
    """A real SMTP server (aiosmtpd) on a free loopback port, keeping each message."""

    def __init__(self):
        from aiosmtpd.controller import Controller

        sink = self
        self.messages: list[email.message.Message] = []

        class Handler:
            async def handle_DATA(self, server, session, envelope):  # noqa: N802
                message = email.message_from_bytes(envelope.content)
                message["X-Envelope-To"] = ", ".join(envelope.rcpt_tos)
                sink.messages.append(message)
                return "250 Message accepted for delivery"

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self.controller.start()

    @property
    def url(self) -> str:
        """The ``SMTP_URL`` of this server."""
        return f"smtp://127.0.0.1:{self.port}"

    def close(self) -> None:
        """Stop the server."""
        self.controller.stop()
