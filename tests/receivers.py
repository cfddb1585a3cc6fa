"""Local receivers for alerts: an HTTP webhook (apprise's json://) and an SMTP server (aiosmtpd), on free ports."""

import asyncio
import email
import email.policy
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from aiosmtpd.smtp import SMTP


@dataclass
class Received:
    """What arrived, with the real time it arrived (Unix seconds)."""

    items: list[tuple[float, dict]] = field(default_factory=list)
    refuse: int = 0  # how many of the next requests to answer 503 (a service that is down for a while)
    url: str = ""

    def titles(self) -> list[str]:
        return [item["title"] for _, item in self.items]


@contextmanager
def webhook() -> Iterator[Received]:
    """An HTTP server taking apprise's JSON posts; yields what it received, and its json:// URL."""
    got = Received()

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            if got.refuse:
                got.refuse -= 1
                self.send_response(503)
            else:
                got.items.append((time.time(), json.loads(body)))
                self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    got.url = f"json://127.0.0.1:{server.server_address[1]}/alerts"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield got
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def mailbox() -> Iterator[Received]:
    """An SMTP server on 127.0.0.1 (aiosmtpd); yields what it received (subject and body), and its mailto:// URL."""
    got = Received()

    class Handler:
        async def handle_DATA(self, server: SMTP, session: object, envelope: object) -> str:
            mail = email.message_from_bytes(envelope.content, policy=email.policy.default)  # type: ignore[attr-defined]
            text = mail.get_body(("plain",)).get_content()
            got.items.append((time.time(), {"title": str(mail["Subject"]), "message": text, "to": str(mail["To"])}))
            return "250 OK"

    loop = asyncio.new_event_loop()
    server = loop.run_until_complete(loop.create_server(lambda: SMTP(Handler()), "127.0.0.1", 0))
    got.url = f"mailto://127.0.0.1:{server.sockets[0].getsockname()[1]}?from=lab@example.com&to=oncall@example.com"
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield got
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        server.close()
        loop.close()
