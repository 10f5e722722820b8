"""Sign-in, sessions, roles, CSRF and the login rate limit.

The session cookie holds only a random session id; the session itself lives in
Redis, so signing out (or removing a user) ends it everywhere at once, including
open event streams that re-check it at every heartbeat.
"""

from __future__ import annotations

import functools
import hmac
import logging
import secrets
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar, cast

from apiflask import APIBlueprint, APIFlask, Schema
from apiflask.exceptions import HTTPError
from apiflask.fields import Nested, String
from apiflask.validators import Length
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import Response, g, request, session
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address

from backend.connections import RedisClient, redis_client
from backend.models import ROLES, User, audit

log = logging.getLogger(__name__)

SESSION_LIFETIME = timedelta(hours=12)
SESSION_KEY = "cmlfleet:session:{}"
LOGIN_LIMIT_PER_USERNAME = "5 per minute"
LOGIN_LIMIT_PER_ADDRESS = "20 per minute"
MUTATING_METHODS = {"POST", "PUT", "PATCH", "DELETE"}

bp = APIBlueprint("auth", __name__, url_prefix="/api/auth", tag="Auth")
limiter = Limiter(key_func=get_remote_address, headers_enabled=True)
hasher = PasswordHasher()

F = TypeVar("F", bound=Callable[..., Any])


def hash_password(password: str) -> str:
    return hasher.hash(password)


def verify_password(user: User, password: str) -> bool:
    try:
        hasher.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        return False
    return True


def create_user(username: str, password: str, role: str) -> User:
    """Create an account; the caller has checked that ``username`` is free."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    return User(
        username=username, password_hash=hash_password(password), role=role
    ).save()


def check_password_strength(password: str) -> None:
    """Refuse passwords too short for an account reachable over the network."""
    if len(password) < 10:
        raise ValueError("the password must have at least 10 characters")


def _session_user(sid: str | None) -> User | None:
    if not sid:
        return None
    username = redis_client().hget(SESSION_KEY.format(sid), "username")
    if username is None:
        return None
    return User.objects(username=username.decode()).first()


def session_is_current(sid: str, username: str, role: str) -> bool:
    """True while session ``sid`` is open for ``username`` with ``role`` unchanged."""
    user = _session_user(sid)
    return user is not None and user.username == username and user.role == role


def current_user() -> User | None:
    """The signed-in user of this request, or None."""
    if "user" not in g:
        g.user = _session_user(session.get("sid"))
    return cast(User | None, g.user)


def current_sid() -> str | None:
    return session.get("sid")


def _csrf_token() -> str | None:
    sid = session.get("sid")
    if not sid:
        return None
    token = redis_client().hget(SESSION_KEY.format(sid), "csrf")
    return token.decode() if token else None


def _check_csrf() -> None:
    expected = _csrf_token()
    given = request.headers.get("X-CSRF-Token", "")
    if not expected or not hmac.compare_digest(expected, given):
        raise HTTPError(
            403,
            "The X-CSRF-Token header is missing or wrong; "
            "read the token from GET /api/auth/me.",
            extra_data={"error": "csrf_failed"},
        )


def require(role: str) -> Callable[[F], F]:
    """Allow the view to signed-in users with ``role`` (admins pass every check)."""

    def decorator(view: F) -> F:
        @functools.wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            user = current_user()
            if user is None:
                raise HTTPError(401, "Sign in first.")
            if request.method in MUTATING_METHODS:
                _check_csrf()
            if role == "admin" and user.role != "admin":
                raise HTTPError(403, "This action needs the admin role.")
            return view(*args, **kwargs)

        wrapped._required_role = role  # type: ignore[attr-defined]
        return cast(F, wrapped)

    return decorator


def public(view: F) -> F:
    """Mark a view as open to anyone, so the route audit knows it is on purpose."""
    view._required_role = "anyone"  # type: ignore[attr-defined]
    return view


def user_dict(user: User) -> dict[str, str]:
    return {"username": user.username, "role": user.role}


class LoginIn(Schema):
    username = String(required=True, validate=Length(1, 64))
    password = String(required=True, validate=Length(1, 1024))


class UserOut(Schema):
    username = String()
    role = String()


class SessionOut(Schema):
    user = Nested(UserOut)
    csrf_token = String()


def _username_key() -> str:
    body = request.get_json(silent=True)
    username = body.get("username") if isinstance(body, dict) else None
    return f"login-user:{str(username or '').strip().lower()}"


def _address_key() -> str:
    return f"login-address:{get_remote_address()}"


def _failed(response: Response) -> bool:
    return response.status_code == 401


def _audit_breach(limit: Any) -> None:
    body = request.get_json(silent=True)
    username = body.get("username") if isinstance(body, dict) else None
    audit(
        "login",
        "denied",
        actor=str(username) if username else None,
        detail=f"rate limited ({limit.limit})",
        client_address=get_remote_address(),
    )


@bp.post("/login")
@bp.input(LoginIn, arg_name="credentials")
@bp.output(SessionOut)
@bp.doc(summary="Sign in", responses=[401, 429])
@limiter.limit(
    LOGIN_LIMIT_PER_ADDRESS,
    key_func=_address_key,
    deduct_when=_failed,
    on_breach=_audit_breach,
)
@limiter.limit(
    LOGIN_LIMIT_PER_USERNAME,
    key_func=_username_key,
    deduct_when=_failed,
    on_breach=_audit_breach,
)
@public
def login(credentials: dict[str, str]) -> dict[str, Any]:
    username = credentials["username"].strip()
    user = User.objects(username=username).first()
    if user is None or not verify_password(user, credentials["password"]):
        audit("login", "failed", actor=username, client_address=get_remote_address())
        log.info("auth: failed sign-in for %s from %s", username, get_remote_address())
        raise HTTPError(401, "The username or password is wrong.")

    sid = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    key = SESSION_KEY.format(sid)
    redis = redis_client()
    redis.hset(key, mapping={"username": user.username, "csrf": csrf})
    redis.expire(key, SESSION_LIFETIME)
    session.clear()
    session["sid"] = sid
    session.permanent = True
    audit("login", "ok", actor=user.username, client_address=get_remote_address())
    log.info("auth: %s signed in", user.username)
    return {"user": user_dict(user), "csrf_token": csrf}


@bp.post("/logout")
@bp.doc(summary="Sign out", responses={204: "Signed out"})
@require("user")
def logout() -> tuple[str, int]:
    sid = session.get("sid")
    if sid:
        redis_client().delete(SESSION_KEY.format(sid))
    user = current_user()
    session.clear()
    if user is not None:
        audit("logout", "ok", actor=user.username, client_address=get_remote_address())
    return "", 204


@bp.get("/me")
@bp.output(SessionOut)
@bp.doc(summary="The signed-in user and the CSRF token", responses=[401])
@require("user")
def me() -> dict[str, Any]:
    user = cast(User, current_user())
    return {"user": user_dict(user), "csrf_token": _csrf_token()}


def end_sessions_of(redis: RedisClient, username: str) -> int:
    """Close every open session of ``username``; its streams close within a
    heartbeat. Returns how many there were."""
    ended = 0
    for key in redis.scan_iter(match=SESSION_KEY.format("*"), count=500):
        if redis.hget(key, "username") == username.encode():
            ended += redis.delete(key)
    return ended


def _account(username: str) -> User:
    user = User.objects(username=username).first()
    if user is None:
        raise LookupError(f"no user is named {username!r}")
    return user


def _keep_an_admin(user: User) -> None:
    """Refuse to take away the last admin: nobody could manage the fleet after."""
    if user.role == "admin" and User.objects(role="admin").count() == 1:
        raise ValueError(f"{user.username} is the only admin: add another first")


def remove_user(redis: RedisClient, username: str, *, actor: str | None = None) -> int:
    """Delete an account and end its sessions; returns how many were open."""
    user = _account(username)
    _keep_an_admin(user)
    user.delete()
    ended = end_sessions_of(redis, username)
    audit(
        "user.remove",
        "ok",
        actor=actor,
        target=username,
        detail=f"{ended} sessions ended",
    )
    return ended


def change_role(
    redis: RedisClient, username: str, role: str, *, actor: str | None = None
) -> int:
    """Give an account another role. Its sessions end, so every page and stream
    of that person starts again with what the new role may see."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    user = _account(username)
    if user.role == role:
        return 0
    _keep_an_admin(user)
    user.update(set__role=role)
    ended = end_sessions_of(redis, username)
    audit("user.role", "ok", actor=actor, target=username, detail=f"now {role}")
    return ended


def change_password(
    redis: RedisClient, username: str, password: str, *, actor: str | None = None
) -> int:
    """Set a new password and end the account's sessions (signed out everywhere)."""
    check_password_strength(password)
    user = _account(username)
    user.update(set__password_hash=hash_password(password))
    ended = end_sessions_of(redis, username)
    audit("user.password", "ok", actor=actor, target=username)
    return ended


def init_app(app: APIFlask) -> None:
    app.permanent_session_lifetime = SESSION_LIFETIME
    url = app.extensions["cmlfleet.settings"].redis_url
    app.config.setdefault(
        "RATELIMIT_STORAGE_URI", "memory://" if url.startswith("fakeredis://") else url
    )
    app.config.setdefault("RATELIMIT_STORAGE_OPTIONS", {"socket_connect_timeout": 1.5})
    if app.config["RATELIMIT_STORAGE_URI"].startswith("memory://"):
        app.config["RATELIMIT_STORAGE_OPTIONS"] = {}
    limiter.init_app(app)


__all__ = [
    "bp",
    "change_password",
    "change_role",
    "create_user",
    "current_user",
    "current_sid",
    "end_sessions_of",
    "public",
    "remove_user",
    "require",
    "session_is_current",
]
