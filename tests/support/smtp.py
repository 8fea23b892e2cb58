"""A real SMTP server on loopback (aiosmtpd, in a thread of the test process) that keeps every message
it receives: plain, with a login and password, with STARTTLS or with TLS from the start (a
self-signed certificate made here with openssl, trusted through SSL_CERT_FILE)."""

from __future__ import annotations

import email
import email.policy
import ssl
import subprocess
import threading
import time
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Literal

from tests.support.processes import free_port

Tls = Literal["", "starttls", "ssl"]


@dataclass
class Received:
    sender: str
    recipients: list[str]
    message: EmailMessage
    login: str  # who authenticated, "" for nobody
    tls: bool  # whether the message travelled encrypted

    @property
    def text(self) -> str:
        part = self.message.get_body(preferencelist=("plain",))
        assert part is not None, "the message has no text part"
        return str(part.get_content())


@dataclass
class _Collector:
    messages: list[Received] = field(default_factory=list)
    arrived: threading.Condition = field(default_factory=threading.Condition)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        login = session.auth_data.login.decode() if session.authenticated and session.auth_data else ""
        # STARTTLS sets session.ssl; TLS from the start shows on the connection only
        tls = session.ssl is not None or server.transport.get_extra_info("ssl_object") is not None
        with self.arrived:
            self.messages.append(
                Received(envelope.mail_from, list(envelope.rcpt_tos), message, login, tls)  # type: ignore[arg-type]
            )
            self.arrived.notify_all()
        return "250 Message accepted for delivery"


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and localhost, and its key."""
    cert, key = directory / "smtp-cert.pem", directory / "smtp-key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


class SmtpServer:
    """`with SmtpServer(tmp_path) as smtp:` listens on `smtp.port` until the block ends. With `login`
    and `password` it accepts that login only (AUTH PLAIN/LOGIN, allowed without TLS only when the
    server speaks none); `tls` is "starttls" (required before MAIL) or "ssl" (TLS from the start)."""

    def __init__(self, directory: Path, *, login: str = "", password: str = "", tls: Tls = "") -> None:
        self.directory = directory
        self.login, self.password, self.tls = login, password, tls
        self.port = free_port()
        self.certificate: Path | None = None
        self._collector = _Collector()
        self._controller: Any = None

    @property
    def messages(self) -> list[Received]:
        return list(self._collector.messages)

    def url(self, scheme: str | None = None) -> str:
        """The EMAIL_URL that reaches this server."""
        scheme = scheme or {"": "smtp", "starttls": "smtp+tls", "ssl": "smtps"}[self.tls]
        credentials = f"{self.login}:{self.password}@" if self.login else ""
        return f"{scheme}://{credentials}127.0.0.1:{self.port}"

    def _authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
        from aiosmtpd.smtp import AuthResult, LoginPassword

        ok = isinstance(data, LoginPassword) and (data.login.decode(), data.password.decode()) == (
            self.login,
            self.password,
        )
        return AuthResult(success=ok, handled=False, auth_data=data)

    def start(self) -> None:
        from aiosmtpd.controller import Controller

        options: dict[str, Any] = {}
        if self.login:
            # aiosmtpd sees STARTTLS only as TLS; TLS from the start would refuse AUTH as "not encrypted"
            require_tls = self.tls == "starttls"
            options |= {"authenticator": self._authenticate, "auth_required": True, "auth_require_tls": require_tls}
        if self.tls:
            self.certificate, key = self_signed_certificate(self.directory)
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(self.certificate, key)
            if self.tls == "ssl":
                options["ssl_context"] = context
            else:
                options |= {"tls_context": context, "require_starttls": True}
        self._controller = Controller(self._collector, hostname="127.0.0.1", port=self.port, **options)
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> SmtpServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def wait_for(self, count: int = 1, timeout: float = 10) -> list[Received]:
        """The messages received so far, once there are at least `count`."""
        deadline = time.monotonic() + timeout
        with self._collector.arrived:
            while len(self._collector.messages) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{count} messages expected, {len(self._collector.messages)} arrived")
                self._collector.arrived.wait(left)
            return list(self._collector.messages)
