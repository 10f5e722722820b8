"""The Flask application factory: settings, connections, blueprints, the SPA."""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import logging
import re
import sys
from pathlib import Path
from typing import Any

from apiflask import APIFlask
from apiflask.exceptions import HTTPError
from flask import Response, jsonify, send_from_directory

from backend import auth, stream, telemetry
from backend.api import health, metrics, workers
from backend.connections import connect_mongo, redis_from_url
from backend.settings import Settings, load_settings

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"

# Sent with every response: no MIME sniffing, no framing (clickjacking), and no
# page address leaking to other sites.
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}
INLINE_SCRIPT = re.compile(rb"<script(?![^>]*\bsrc=)[^>]*>(.*?)</script>", re.S)

ERROR_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
    503: "unavailable",
}


def configure_logging() -> None:
    """Log to stdout, once, unless the host already set up handlers."""
    root = logging.getLogger()
    if root.handlers:
        return
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    root.addHandler(handler)
    root.setLevel(logging.INFO)


def error_body(error: HTTPError) -> tuple[dict[str, Any], int, Any]:
    """Shape every error as ``{"error", "message"}`` (+ ``details`` for validation)."""
    status = error.status_code
    body: dict[str, Any] = {
        "error": error.extra_data.get("error") or ERROR_CODES.get(status, "error"),
        "message": error.message or "The request failed.",
    }
    if status == 400 and error.detail:
        body["error"] = error.extra_data.get("error") or "validation_error"
        body["message"] = (
            error.message
            if error.extra_data.get("error")
            else ("The request is not valid: " + describe_details(error.detail))
        )
        body["details"] = error.detail
    return body, status, error.headers


def describe_details(detail: Any, prefix: str = "") -> str:
    """One sentence naming each invalid field, from marshmallow's nested messages."""
    if isinstance(detail, dict):
        parts = []
        for key, value in detail.items():
            name = (
                f"{prefix}.{key}"
                if prefix and key not in {"json", "query"}
                else (prefix or ("" if key in {"json", "query"} else str(key)))
            )
            parts.append(describe_details(value, name))
        return "; ".join(p for p in parts if p)
    if isinstance(detail, list):
        text = " ".join(str(item) for item in detail if not isinstance(item, dict))
        return f"{prefix}: {text}" if prefix else text
    return f"{prefix}: {detail}" if prefix else str(detail)


def create_app(settings: Settings | None = None, **config: Any) -> APIFlask:
    """Build the web application for ``settings`` (read from the environment)."""
    settings = settings or load_settings()
    app = APIFlask(
        __name__,
        title="CML Fleet API",
        version="1",
        spec_path="/api/openapi.json",
        docs_path=None,
        static_folder=None,  # type: ignore[arg-type]
    )
    app.config.update(
        SECRET_KEY=settings.secret_key,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=not settings.development,
        SESSION_COOKIE_NAME="cmlfleet_session",
        VALIDATION_ERROR_STATUS_CODE=400,
        MAX_CONTENT_LENGTH=1024 * 1024,
        JSON_SORT_KEYS=False,
        SYNC_LOCAL_SPEC=False,
        SPEC_FORMAT="json",
        INFO={"description": "Monitor and operate Cisco Modeling Labs workers on EC2."},
    )
    app.config.update(config)
    app.extensions["cmlfleet.settings"] = settings
    app.extensions["cmlfleet.redis"] = redis_from_url(settings.redis_url)
    connect_mongo(settings)

    app.error_processor(error_body)
    app.spec_processor(merge_duplicate_schemas)  # type: ignore[arg-type]
    auth.init_app(app)
    app.register_blueprint(health.bp)
    app.register_blueprint(auth.bp)
    app.register_blueprint(workers.bp)
    stream.init_app(app)
    app.register_blueprint(metrics.bp)
    telemetry.init_app(app)
    register_spa(app)
    app.after_request(_security_headers)
    return app


def _security_headers(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


@functools.lru_cache(maxsize=4)
def content_security_policy(page: bytes) -> str:
    """The policy of the app's page: scripts from this origin and the page's own
    inline scripts (by hash), connections to this origin only, never framed.
    Styles may be inline: the charts and bars set widths and colours in place."""
    hashes = "".join(
        f" 'sha256-{base64.b64encode(hashlib.sha256(script).digest()).decode()}'"
        for script in INLINE_SCRIPT.findall(page)
    )
    return "; ".join(
        [
            "default-src 'self'",
            f"script-src 'self'{hashes}",
            "style-src 'self' 'unsafe-inline'",
            "img-src 'self' data:",
            "connect-src 'self'",
            "object-src 'none'",
            "base-uri 'self'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    )


def merge_duplicate_schemas(spec: dict[str, Any]) -> dict[str, Any]:
    """Fold ``Name1`` copies of a schema into ``Name`` in the OpenAPI document.

    apiflask registers a schema a second time, under a numbered name, when a list
    nested it first; the copies are identical, so references are pointed back.
    """
    schemas = spec.get("components", {}).get("schemas", {})
    renames = {}
    for name in list(schemas):
        base = name.rstrip("0123456789")
        if base != name and schemas.get(base) == schemas[name]:
            renames[f"#/components/schemas/{name}"] = f"#/components/schemas/{base}"
            del schemas[name]
    if not renames:
        return spec
    text = json.dumps(spec)
    for old, new in renames.items():
        text = text.replace(f'"{old}"', f'"{new}"')
    return json.loads(text)


def close_app(app: APIFlask) -> None:
    """Release the app's connections (tests and the demo build several apps)."""
    app.extensions["cmlfleet.redis"].close()
    storage = getattr(auth.limiter, "_storage", None)
    client = getattr(storage, "storage", None)
    if client is not None and hasattr(client, "close"):
        client.close()


def register_spa(app: APIFlask) -> None:
    """Serve the built single-page app at ``/``; deep links fall back to it."""

    @app.get("/")
    @app.get("/<path:path>")
    @app.doc(hide=True)
    def spa(path: str = "") -> Response:
        if path.startswith("api/"):
            raise HTTPError(404, f"There is no API route /{path}.")
        if path and (STATIC_DIR / path).is_file():
            return send_from_directory(STATIC_DIR, path)
        if not (STATIC_DIR / "index.html").is_file():
            response = jsonify(
                error="unavailable",
                message="The web app is not built: run `make build`.",
            )
            response.status_code = 503
            return response
        page = (STATIC_DIR / "index.html").read_bytes()
        response = Response(page, mimetype="text/html")
        response.headers["Cache-Control"] = "no-cache"
        response.headers["Content-Security-Policy"] = content_security_policy(page)
        return response
