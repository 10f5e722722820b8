"""Tokens shaped like CML's: HS256 JWTs with ``iss``, ``sub``, ``iat``, ``exp``, ``jti``.

Each controller signs with its own key, derived from one secret per simulator, so
a token from one controller is unknown to every other, as on real hardware. A
token is valid while it verifies, has not expired and its ``jti`` is still among
the controller's sessions; logging out or revoking removes sessions.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
import uuid
from collections.abc import Callable

import jwt

from backend.simulator.controller import Controller, User

ISSUER = "com.cisco.virl"


class TokenIssuer:
    """Issues and checks the tokens of every controller of one simulator."""

    def __init__(
        self,
        secret: bytes | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._secret = secret or secrets.token_bytes(32)
        self._clock = clock

    def issue(self, controller: Controller, user: User, lifetime: float) -> str:
        """A new token for ``user`` that expires ``lifetime`` seconds from now."""
        now = self._clock()
        expires = int(now + max(1.0, lifetime))
        jti = str(uuid.uuid4())
        claims = {
            "iss": ISSUER,
            "sub": user.id,
            "iat": int(now),
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

        with controller.lock:
            if claims["jti"] not in controller.sessions:
                return None
            user = controller.user(claims["sub"])
        return None if user is None else (user, claims["jti"])

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
