"""Who may use the dashboard, and which POSTs really come from it.

- Access. With a token set, every request carries it: an ``Authorization: Bearer`` header, or
  the cookie that opening ``/?token=...`` sets. Without a token (allowed on loopback only) a
  request must name a loopback host, so that a page on another site cannot reach the dashboard
  by pointing its own domain at 127.0.0.1 (DNS rebinding).
- Actions. POST only; the form carries a CSRF token bound to the browser's session cookie; and
  a request the browser marks as coming from another site (``Sec-Fetch-Site``, ``Origin``) is
  refused whatever it carries.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
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


def host_name(host_header: str) -> str:
    """The name part of a Host header: ``[::1]:8737`` -> ``::1``, ``a.b:80`` -> ``a.b``."""
    if host_header.startswith("["):
        return host_header[1 : host_header.find("]")] if "]" in host_header else host_header
    return host_header.rsplit(":", 1)[0] if host_header.count(":") == 1 else host_header


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

    def admits(self, request: Request) -> bool:
        if self.token is None:
            return is_loopback(host_name(request.headers.get("host", "")))
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
        if self.guard.token is None:
            return self._deny(
                request,
                "this dashboard answers only to http://127.0.0.1 or http://localhost "
                f"(the request named host {request.headers.get('host', '')!r})",
                status=403,
            )
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
