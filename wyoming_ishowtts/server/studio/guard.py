"""Who may use the studio, checked before any handler runs; and every refusal as a JSON body the page shows.

Four checks, in order:

1. ``--http-proxy ADDRESS``: only that address may connect. It is a reverse proxy that authenticates users
   itself: Home Assistant's ingress, which reaches an add-on from the Supervisor's address and forwards the
   browser's own ``Host`` and ``Origin``.
2. No token and no proxy: the request must be addressed (``Host``) to an IP address, ``localhost`` or the
   ``--http-host`` name. A page of another site can make a browser send requests here by pointing its own
   name at this machine (DNS rebinding); the browser then thinks the studio is that site, so the cross-site
   check below cannot see it, but the ``Host`` header still carries the other site's name. An IP address
   cannot be rebound. With a token, rebinding gains nothing: the other site never has the token or its
   cookie.
3. ``POST``/``PATCH``/``DELETE`` from another site's page are refused (``Sec-Fetch-Site``, or ``Origin``
   against ``Host``), unless they carry the token in an ``Authorization`` header; so are reads of the API
   that the browser marks as made by another site (its ``<audio>`` playing a voice's clip, or timing the
   voice list).
4. With ``--http-token``: the API needs the token (``Authorization: Bearer``, or the cookie the page gets
   from ``api/session``); the page itself does not, so it can ask for the token.

Every answer also tells the browser not to show it inside another site's frame (`protect_response`): a
page framed by another site is the studio's own origin, so its buttons would pass every check above while
the other site steers the clicks. Home Assistant's ingress panel frames it from the same origin.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from aiohttp import web

from ...errors import CROSS_SITE_REQUEST, HOST_NOT_ALLOWED, NOT_FROM_PROXY, TOKEN_REQUIRED, StudioError
from ..settings import StudioSettings
from .forms import too_large
from .speech import SynthesisFailed

_LOGGER = logging.getLogger(__name__)

COOKIE = "ishowtts_studio"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
CROSS_SITE = frozenset({"cross-site", "same-site"})
"""``Sec-Fetch-Site`` values of a request made by another site's page."""
PROTECTIVE_HEADERS = {
    "Content-Security-Policy": "frame-ancestors 'self'",
    "X-Frame-Options": "SAMEORIGIN",
    "X-Content-Type-Options": "nosniff",
}
SETTINGS = web.AppKey("studio-settings", StudioSettings)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every refusal becomes a JSON body the page can show."""
    try:
        return await handler(request)
    except StudioError as err:
        return web.json_response(err.body(), status=err.status)
    except web.HTTPException as err:
        if err.status < 400:
            raise
        if err.status == 413:  # aiohttp's own body limit, a backstop behind forms.read_form's
            refusal = too_large(request.app[SETTINGS].max_upload_bytes)
            return web.json_response(refusal.body(), status=refusal.status)
        body = {"error": {"code": f"http-{err.status}", "message": err.reason}}
        allow = err.headers.get("Allow")
        return web.json_response(body, status=err.status, headers={"Allow": allow} if allow else None)
    except (ConnectionError, SynthesisFailed):
        raise  # the response has started: only dropping the connection can tell the client
    except Exception:
        _LOGGER.exception("Studio request %s %s failed", request.method, request.path)
        body = {"error": {"code": "internal-error", "message": "The server failed; see its log."}}
        return web.json_response(body, status=500)


@web.middleware
async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    settings = request.app[SETTINGS]
    token = settings.token
    if settings.proxy is not None:
        if not _same_address(request.remote, settings.proxy):
            _LOGGER.warning(
                "Studio: refused a connection from %s (only %s may connect)", request.remote, settings.proxy
            )
            raise StudioError(
                NOT_FROM_PROXY,
                "Open the studio through Home Assistant (the Voices panel in the sidebar).",
            )
    elif token is None and not host_allowed(request.headers.get("Host"), settings.host):
        raise StudioError(
            HOST_NOT_ALLOWED,
            "This page answers only addresses like http://127.0.0.1:PORT/ or http://localhost:PORT/. "
            "To open it by a host name, start the server with --http-token.",
        )
    bearer = token is not None and _bearer_matches(request, token)
    if request.method in UNSAFE_METHODS:
        forged = cross_site(request)
    else:
        forged = request.path.startswith("/api/") and request.headers.get("Sec-Fetch-Site") in CROSS_SITE
    if forged and not bearer:
        raise StudioError(
            CROSS_SITE_REQUEST,
            "Refused: this request came from another site's page. Use the studio page itself "
            "(or send the token in an Authorization header).",
        )
    if token is not None and request.path.startswith("/api/") and request.path != "/api/session":
        cookie = request.cookies.get(COOKIE)
        if not (bearer or (cookie is not None and same_secret(cookie, token))):
            raise StudioError(TOKEN_REQUIRED, "This server needs its access token; enter it on the page.")
    return await handler(request)


async def protect_response(request: web.Request, response: web.StreamResponse) -> None:
    """Sent with every answer (aiohttp's ``on_response_prepare``): no framing by other sites, no sniffing."""
    response.headers.update(PROTECTIVE_HEADERS)


def host_allowed(host_header: str | None, bind_host: str) -> bool:
    """A ``Host`` header DNS rebinding cannot have made: an IP address, ``localhost`` or the bind name.
    No header at all is not a browser (browsers always send one)."""
    if host_header is None:
        return True
    try:
        name = urlsplit(f"//{host_header}").hostname
    except ValueError:
        return False
    if not name:
        return False
    if name == "localhost" or name == bind_host.lower().strip("[]"):
        return True
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def cross_site(request: web.Request) -> bool:
    """True for a browser request sent by a page of another origin.

    A browser marks every request with ``Sec-Fetch-Site`` (page scripts cannot change it); older browsers
    send ``Origin``, compared with the host the request was sent to (``Host``, or the original host a reverse
    proxy reports in ``X-Forwarded-Host``; another site's page cannot add that header without a CORS
    preflight, which the studio never allows). A request with neither header is not from a browser page, so
    not a forgery.
    """
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if fetch_site is not None:
        return fetch_site not in ("same-origin", "none")
    origin = request.headers.get("Origin")
    if origin is None:
        return False
    parts = urlsplit(origin)
    if origin == "null" or not parts.netloc:
        return True
    allowed = {_netloc(request.headers.get("Host", ""), parts.scheme)}
    for value in request.headers.getall("X-Forwarded-Host", []):
        allowed.update(_netloc(host.strip(), parts.scheme) for host in value.split(","))
    return _netloc(parts.netloc, parts.scheme) not in allowed


def same_secret(given: str, token: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8"), token.encode("utf-8"))


def _bearer_matches(request: web.Request, token: str) -> bool:
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and same_secret(value.strip(), token)


def _same_address(remote: str | None, expected: str) -> bool:
    if remote is None:
        return False
    try:
        address = ipaddress.ip_address(remote)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # a dual-stack listener reports IPv4 peers as ::ffff:a.b.c.d
    return address == ipaddress.ip_address(expected)


def _netloc(host: str, scheme: str) -> str:
    host = host.lower()
    default = {"http": ":80", "https": ":443"}.get(scheme)
    if default and host.endswith(default):
        host = host[: -len(default)]
    return host
