"""Tokens shaped like CML's: HS256 JWTs carrying iss, sub, iat, exp and jti.

Each controller signs with its own key, derived from one secret per simulator, so
a token from one controller is unknown to every other, as on real hardware. A
token is valid while it verifies, has not expired and its ``jti`` is still among
the controller's sessions; logging out or revoking removes sessions.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import jwt

from backend.simulator.controller import Controller, User

ISSUER = "com.cisco.virl"
REMEMBERED_TOKENS = 50_000


class TokenIssuer:
    """Issues and checks the tokens of every controller of one simulator."""

    def __init__(
        self,
        secret: bytes | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._secret = secret or secrets.token_bytes(32)
        self._clock = clock
        self._known: dict[tuple[str, str], dict[str, Any]] = {}
        self._lock = threading.Lock()

    def issue(self, controller: Controller, user: User, lifetime: float) -> str:
        """A new token for ``user`` that expires ``lifetime`` seconds from now."""
        now = self._clock()
        issued = int(now)
        expires = issued + max(1, math.ceil(lifetime))
        jti = str(uuid.uuid4())
        claims = {
            "iss": ISSUER,
            "sub": user.id,
            "iat": issued,
            "exp": expires,
            "jti": jti,
        }
        token = jwt.encode(claims, self._key(controller), algorithm="HS256")

        with controller.lock:
            controller.sessions = {
                key: session
                for key, session in controller.sessions.items()
                if session[1] > now
            }
            controller.sessions[jti] = (user.id, expires)
        return token

    def verify(self, controller: Controller, token: str) -> tuple[User, str] | None:
        """The user and ``jti`` of a valid token, or None for any invalid one."""
        claims = self._claims(controller, token)
        if claims is None or claims["exp"] <= time.time():
            return None

        with controller.lock:
            if claims["jti"] not in controller.sessions:
                return None
            user = controller.user(claims["sub"])
        return None if user is None else (user, claims["jti"])

    def _claims(self, controller: Controller, token: str) -> dict[str, Any] | None:
        # Checking an HMAC signature is most of the cost of a simulated request,
        # so a token is checked once and its claims remembered.
        key = (controller.id, token)
        with self._lock:
            claims = self._known.get(key)
        if claims is not None:
            return claims

        try:
            claims = jwt.decode(
                token,
                self._key(controller),
                algorithms=["HS256"],
                issuer=ISSUER,
                options={"require": ["exp", "iat", "sub", "jti"]},
            )
        except jwt.InvalidTokenError:
            return None

        with self._lock:
            self._known[key] = claims
            if len(self._known) > REMEMBERED_TOKENS:
                del self._known[next(iter(self._known))]
        return claims

    @staticmethod
    def end_session(controller: Controller, jti: str) -> None:
        with controller.lock:
            controller.sessions.pop(jti, None)

    @staticmethod
    def end_sessions_of(controller: Controller, user_id: str) -> None:
        with controller.lock:
            controller.sessions = {
                key: session
                for key, session in controller.sessions.items()
                if session[0] != user_id
            }

    @staticmethod
    def revoke_all(controller: Controller) -> None:
        with controller.lock:
            controller.sessions = {}

    def _key(self, controller: Controller) -> bytes:
        return hmac.new(self._secret, controller.id.encode(), hashlib.sha256).digest()
