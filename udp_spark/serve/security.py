"""Who is calling: API keys (stored hashed) or signed JWTs, and a token bucket per caller."""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass

import jwt

from udp_spark.serve import keys
from udp_spark.serve.settings import ApiConfig, ApiConfigError, RateLimit

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Principal:
    """An authenticated caller."""

    key_id: str  # the key's id, or ``jwt:<sub>``
    role: str
    rate_limit: RateLimit


class AuthError(Exception):
    """No credentials (``missing``) or credentials that do not check out."""

    def __init__(self, detail: str, missing: bool = False) -> None:
        super().__init__(detail)
        self.detail = detail
        self.missing = missing


class Authenticator:
    """Checks an API key or a bearer JWT against the configuration; deny by default."""

    def __init__(self, cfg: ApiConfig) -> None:
        self.cfg = cfg
        self._keys = {k.id: k for k in cfg.keys if not k.disabled}
        self._jwt_secret: str | None = None
        if cfg.jwt is not None:
            self._jwt_secret = os.environ.get(cfg.jwt.secret_env) or None
            if self._jwt_secret is None:
                log.warning("serve: jwt is configured but %s is not set: tokens are refused",
                            cfg.jwt.secret_env)
            elif len(self._jwt_secret.encode()) < 32 and any(
                    a.startswith("HS") for a in cfg.jwt.algorithms):
                raise ApiConfigError(f"jwt: the secret in {cfg.jwt.secret_env} is shorter "
                                     "than 32 bytes; HMAC keys must be at least as long as "
                                     "the hash (python -c 'import secrets; "
                                     "print(secrets.token_urlsafe(48))')")

    def authenticate(self, api_key: str | None, bearer: str | None) -> Principal:
        if api_key:
            return self._key(api_key)
        if bearer:
            return self._key(bearer) if bearer.startswith(keys.PREFIX) else self._jwt(bearer)
        raise AuthError("no credentials: send an API key in X-API-Key or "
                        "'Authorization: Bearer <key or JWT>'", missing=True)

    def _key(self, presented: str) -> Principal:
        key_id = keys.key_id_of(presented)
        entry = self._keys.get(key_id) if key_id else None
        # The hash is computed even for an unknown id, so timing tells nothing.
        ok = keys.verify(presented, entry.hash if entry else "sha256:" + "0" * 64)
        if entry is None or not ok:
            raise AuthError("invalid API key")
        return Principal(entry.id, entry.role, entry.rate_limit or self.cfg.rate_limit)

    def _jwt(self, token: str) -> Principal:
        settings = self.cfg.jwt
        if settings is None or self._jwt_secret is None:
            raise AuthError("invalid credentials (bearer tokens are not enabled)")
        try:
            claims = jwt.decode(
                token, self._jwt_secret, algorithms=list(settings.algorithms),
                audience=settings.audience, issuer=settings.issuer,
                leeway=settings.leeway_seconds,
                options={"require": ["exp", "sub", settings.role_claim]})
        except jwt.PyJWTError as exc:
            raise AuthError(f"invalid token: {exc}") from None
        role = claims.get(settings.role_claim)
        if not isinstance(role, str) or role not in self.cfg.roles:
            raise AuthError("invalid token: unknown role")
        return Principal(f"jwt:{claims['sub']}", role,
                         settings.rate_limit or self.cfg.rate_limit)


class RateLimiter:
    """One token bucket per caller, in this process."""

    def __init__(self) -> None:
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, last time)
        self._lock = threading.Lock()

    def take(self, key: str, limit: RateLimit) -> float:
        """0 when the request may go ahead, else the seconds until a token is there."""
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(key, (float(limit.burst), now))
            tokens = min(float(limit.burst), tokens + (now - last) * limit.per_second)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                return 0.0
            self._buckets[key] = (tokens, now)
            return (1.0 - tokens) / limit.per_second
