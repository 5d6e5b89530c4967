"""Who may use the dashboard, and which POSTs really come from it.

- Access. ``midway ui`` has a token unless told ``--no-token`` (loopback only): every request
  carries it, as an ``Authorization: Bearer`` header or the cookie that opening
  ``/?token=...`` sets.
- Host. Every request names this dashboard in its ``Host`` header, parsed strictly: a loopback
  name or address (or the ``--host`` it listens on), and the port it listens on if any. So a
  page on another site cannot reach it by pointing its own domain at 127.0.0.1 (DNS
  rebinding), and ``127.0.0.1:8737@evil.example`` is not mistaken for a loopback name.
- Actions. POST only; the form carries a CSRF token bound to the browser's session cookie; and
  a request the browser marks as coming from another site (``Sec-Fetch-Site``, ``Origin``) is
  refused whatever it carries.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
import secrets
from dataclasses import dataclass, field
from urllib.parse import urlencode, urlsplit

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

SECURITY_HEADERS = {
    # Scripts and styles come from /static only: no inline code, so injected markup is inert.
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    # Not "no-referrer": with it, browsers send "Origin: null" on the dashboard's own forms.
    "Referrer-Policy": "same-origin",
}


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    host = host.strip().strip("[]").rstrip(".").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# a name (letters, digits, dots, dashes) or a bracketed IPv6 address, and an optional port
_HOST = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::([0-9]{1,5}))?")
WILDCARDS = ("", "0.0.0.0", "::", "[::]")


def parse_host(header: str) -> tuple[str, int | None] | None:
    """``(name, port)`` of a Host header, or None when it is anything but ``name[:port]``."""
    match = _HOST.fullmatch(header)
    if match is None:
        return None
    name = match.group(1).strip("[]").rstrip(".").lower()
    return name, int(match.group(2)) if match.group(2) else None


def _digest(key: bytes, text: str) -> str:
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Guard:
    """The access rules of one dashboard process.

    ``port`` is part of the cookie names: browsers share cookies between the ports of a host,
    and two dashboards side by side should not sign each other out.
    """

    token: str | None
    port: int
    host: str = "127.0.0.1"  # the address it listens on
    secret: bytes = field(default_factory=lambda: secrets.token_bytes(32), repr=False)

    @property
    def session_cookie(self) -> str:
        return f"midway_session_{self.port}"

    @property
    def auth_cookie(self) -> str:
        return f"midway_auth_{self.port}"

    def login_value(self) -> str:
        """What the login cookie holds: derived from the token, never the token itself."""
        assert self.token is not None
        return _digest(self.token.encode(), "midway-ui-login")

    def token_matches(self, given: str) -> bool:
        return self.token is not None and hmac.compare_digest(given.encode(), self.token.encode())

    def host_refusal(self, header: str) -> str | None:
        """Why a request naming ``header`` as its host is not for this dashboard, or None."""
        parsed = parse_host(header)
        if parsed is None:
            return f"the request's Host header {header!r} is not a host name and port"
        name, port = parsed
        if port is not None and port != self.port:
            return (
                f"the request named port {port}, but this dashboard listens on {self.port} "
                "(an SSH tunnel must use the same port on both ends)"
            )
        if is_loopback(name):
            return None
        if self.host.lower() in WILDCARDS and self.token is not None:
            return None  # reachable by any of the machine's names; the token guards it
        if name == self.host.strip("[]").rstrip(".").lower():
            return None
        return (
            f"this dashboard answers only to {self.address_names()} (the request named host "
            f"{header!r})"
        )

    def address_names(self) -> str:
        names = "http://127.0.0.1 or http://localhost"
        if not is_loopback(self.host) and self.host.lower() not in WILDCARDS:
            names += f" or http://{self.host}"
        return names

    def admits(self, request: Request) -> bool:
        if self.token is None:
            return True
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and self.token_matches(given.strip()):
            return True
        cookie = request.cookies.get(self.auth_cookie, "")
        return hmac.compare_digest(cookie.encode(), self.login_value().encode())

    def csrf_token(self, session: str) -> str:
        return _digest(self.secret, "csrf:" + session)

    def session_of(self, request: Request) -> tuple[str, bool]:
        """The browser's session id, and whether it is new (then the response must set it)."""
        session = request.cookies.get(self.session_cookie, "")
        if len(session) >= 32:
            return session, False
        return secrets.token_urlsafe(32), True

    def remember(self, response: Response, session: str) -> None:
        response.set_cookie(
            self.session_cookie, session, httponly=True, samesite="strict", path="/"
        )

    def refuse_post(self, request: Request, form: dict[str, str]) -> str | None:
        """Why this POST is not the user's own doing, or None when it is."""
        fetch_site = request.headers.get("sec-fetch-site")
        if fetch_site is not None and fetch_site not in ("same-origin", "none"):
            return f"the browser says this request came from another site ({fetch_site})"
        origin = request.headers.get("origin")
        if origin is not None:
            host = request.headers.get("host", "")
            if origin == "null" or urlsplit(origin).netloc.lower() != host.lower():
                return f"the request came from {origin}, not from this dashboard ({host})"
        session = request.cookies.get(self.session_cookie, "")
        given = form.get("csrf", "")
        if not session or not given:
            return "the form carries no session; reload the page and try again"
        if not hmac.compare_digest(given.encode(), self.csrf_token(session).encode()):
            return "the form's token does not match this session; reload the page and try again"
        return None


class Gatekeeper:
    """ASGI middleware: admits requests by :class:`Guard`'s rules and adds security headers.

    ``GET /any/path?token=T`` with the right token sets the login cookie and redirects to the
    same address without the token, so that it stays out of the history and of screenshots.
    """

    def __init__(self, app: ASGIApp, guard: Guard) -> None:
        self.app = app
        self.guard = guard

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers.setdefault(name, value)
            await send(message)

        request = Request(scope)
        hosts = request.headers.getlist("host")
        wrong_host = self.guard.host_refusal(hosts[0] if len(hosts) == 1 else "")
        if wrong_host is not None:
            response: Response | None = self._deny(request, wrong_host, status=403)
        else:
            response = self._login(request) or self._refusal(request)
        if response is not None:
            await response(scope, receive, send_with_headers)
            return
        await self.app(scope, receive, send_with_headers)

    def _login(self, request: Request) -> Response | None:
        given = request.query_params.get("token")
        if given is None or self.guard.token is None or request.method != "GET":
            return None
        if not self.guard.token_matches(given):
            return self._deny(request, "that token is not this dashboard's token")
        rest = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
        # One leading slash: "//host/..." would send the browser to another site.
        target = "/" + request.url.path.lstrip("/") + (f"?{urlencode(rest)}" if rest else "")
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(
            self.guard.auth_cookie,
            self.guard.login_value(),
            httponly=True,
            samesite="strict",
            path="/",
        )
        return response

    def _refusal(self, request: Request) -> Response | None:
        if self.guard.admits(request):
            return None
        return self._deny(
            request,
            "this dashboard needs its token: open the address `midway ui` printed (it ends "
            "in ?token=...), or send the header 'Authorization: Bearer <token>'",
        )

    @staticmethod
    def _deny(request: Request, message: str, status: int = 401) -> Response:
        if request.url.path.startswith("/api/"):
            return JSONResponse({"error": message}, status_code=status)
        return PlainTextResponse(f"midway ui: {message}\n", status_code=status)
