"""The member web app (static files built by web/, shipped in api/web/) served at `/`."""
from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Response

WEB_DIR = Path(__file__).parent / "web"
# The keystore lives in this origin's localStorage: only our own script may run, nothing may
# frame the app, and no request leaves for another origin.
WEB_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
                               "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Permissions-Policy": "camera=(self)",
}
WEB_ASSETS = {"app.js": "text/javascript; charset=utf-8", "app.css": "text/css; charset=utf-8"}
IMMUTABLE = "public, max-age=31536000, immutable"


def _accepts_gzip(accept_encoding: str) -> bool:
    """Accept-Encoding names gzip (or *) without q=0."""
    for part in accept_encoding.split(","):
        name, _, params = part.strip().partition(";")
        if name.strip().lower() in ("gzip", "*"):
            q = params.strip().lower()
            try:
                return not q.startswith("q=") or float(q[2:]) > 0
            except ValueError:
                return False
    return False


def mount_web_app(app: FastAPI) -> None:
    """The member web app (static files built once, shipped in the package) at `/`.
    Mounted last so every API route above takes precedence. Security headers on every file;
    app.js/app.css precompressed (the build writes *.gz) and cached for a year when asked for
    with the current `?v=` content hash (index.html names them so), everything else
    revalidated (`no-cache`) so a new release is picked up at once. (create_app turns off
    /docs and /redoc: Swagger UI loads a floating CDN script onto this origin.)"""
    if not (WEB_DIR / "index.html").is_file():
        return
    import hashlib
    from fastapi.staticfiles import StaticFiles
    from starlette.datastructures import Headers, QueryParams

    versions = {name: hashlib.sha256((WEB_DIR / name).read_bytes()).hexdigest()[:12]
                for name in WEB_ASSETS if (WEB_DIR / name).is_file()}

    class WebApp(StaticFiles):
        async def get_response(self, path: str, scope) -> Response:
            asset = path if path in versions else None
            gz = WEB_DIR / f"{path}.gz" if asset else None
            if gz is not None and gz.is_file() and _accepts_gzip(Headers(scope=scope).get("accept-encoding", "")):
                response = self.file_response(gz, gz.stat(), scope)
                response.headers["content-type"] = WEB_ASSETS[asset]
                if response.status_code == 200:
                    response.headers["content-encoding"] = "gzip"
            else:
                response = await super().get_response(path, scope)
            if asset:
                response.headers["vary"] = "Accept-Encoding"
            fresh = asset and QueryParams(scope.get("query_string", b"").decode("latin-1")).get("v") == versions[asset]
            response.headers["cache-control"] = IMMUTABLE if fresh else "no-cache"
            response.headers.update(WEB_HEADERS)
            return response

    app.mount("/", WebApp(directory=WEB_DIR, html=True), name="web")
