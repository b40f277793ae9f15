"""The API's own configuration (``conf/api.yaml``): roles, keys, JWT, limits, audit.

Parsed once at start into frozen models that forbid unknown keys; a bad file fails before
the server listens, with a message naming the file and the key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from udp_spark.config import ConfigError, read_yaml

# Every endpoint a role may be granted, by name (the route's ``name`` in the app).
ENDPOINTS: tuple[str, ...] = (
    "profile", "lookup", "lineage", "history", "identity_events", "customer_segments",
    "segments", "segment_members", "consent_read", "consent_write", "erasure_write",
    "erasure_read", "events_write", "export", "resolve",
)

MaskKind = Literal["redact", "last4", "email", "year"]


class ApiConfigError(ValueError):
    """The API configuration is invalid; the message names the file and key."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RateLimit(_Model):
    """A token bucket: ``per_second`` tokens added, at most ``burst`` held."""

    per_second: float = Field(default=50.0, gt=0)
    burst: int = Field(default=100, ge=1)


class RoleConfig(_Model):
    """What a role may see and call, and the consent purpose it acts under."""

    description: str = ""
    endpoints: tuple[str, ...] = Field(min_length=1, description="endpoint names or '*'")
    purpose: str | None = Field(default=None, description="consent purpose: a profile whose "
                                "consent[purpose] is not allowed (or expired) is not returned")
    fields: tuple[str, ...] = Field(default=("*",), description="profile columns it may see "
                                    "('*' = all); customer_id is always present")
    exclude: tuple[str, ...] = ()
    mask: dict[str, MaskKind] = Field(default_factory=dict)
    pseudonymous: bool = Field(default=False, description="customer ids are replaced by a "
                               "keyed hash (HMAC-SHA256) in paths and answers")

    @model_validator(mode="after")
    def _check(self) -> RoleConfig:
        unknown = [e for e in self.endpoints if e != "*" and e not in ENDPOINTS]
        if unknown:
            raise ValueError(f"unknown endpoints {unknown}; endpoints are {list(ENDPOINTS)}")
        return self

    def may_call(self, endpoint: str) -> bool:
        return "*" in self.endpoints or endpoint in self.endpoints

    def sees(self, column: str) -> bool:
        if column in self.exclude:
            return False
        return "*" in self.fields or column in self.fields


class ApiKey(_Model):
    """One API key: its public id, role and the hash of its secret (never the secret)."""

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{1,62}$")
    role: str
    hash: str = Field(pattern=r"^sha256:[0-9a-f]{64}$",
                      description="sha256:<hex> of the whole key; see `python -m "
                      "udp_spark.serve.keys`")
    rate_limit: RateLimit | None = None
    disabled: bool = False


class JwtSettings(_Model):
    """Signed bearer tokens (HS256 by default) whose ``role`` claim names a role."""

    secret_env: str = "UDP_API_JWT_SECRET"
    algorithms: tuple[str, ...] = ("HS256",)
    audience: str | None = "udp-api"
    issuer: str | None = None
    role_claim: str = "role"
    leeway_seconds: int = Field(default=30, ge=0)
    rate_limit: RateLimit | None = None


class AuditSettings(_Model):
    """Where and how often access rows are written (``audit.api_access``)."""

    enabled: bool = True
    flush_seconds: float = Field(default=2.0, gt=0)
    flush_rows: int = Field(default=500, ge=1)


class ApiConfig(_Model):
    """The whole API configuration."""

    refresh_seconds: float = Field(default=1.0, gt=0, description="how often the Delta logs "
                                   "are polled for a newer table version")
    default_region: str = Field(default="US", min_length=2, max_length=2,
                                description="region of phone numbers given without +country")
    max_body_bytes: int = Field(default=5_000_000, ge=1024, description="larger request "
                                "bodies (by Content-Length) answer 413")
    pseudonym_key_env: str = Field(default="UDP_API_PSEUDONYM_KEY", description="env var "
                                   "holding the key of pseudonymous ids and look-up hashes")
    rate_limit: RateLimit = RateLimit()
    audit: AuditSettings = AuditSettings()
    jwt: JwtSettings | None = None
    roles: dict[str, RoleConfig] = Field(min_length=1)
    keys: tuple[ApiKey, ...] = ()
    keys_file: str | None = Field(default=None, description="a YAML file with more `keys:` "
                                  "(relative to this file)")

    @model_validator(mode="after")
    def _check(self) -> ApiConfig:
        ids = [k.id for k in self.keys]
        dup = sorted({i for i in ids if ids.count(i) > 1})
        if dup:
            raise ValueError(f"keys: ids {dup} are defined twice")
        bad = [(k.id, k.role) for k in self.keys if k.role not in self.roles]
        if bad:
            raise ValueError(f"keys: unknown roles {bad}; roles are {sorted(self.roles)}")
        return self


def _read(path: Path) -> dict[str, Any]:
    """The file as a mapping, ``${VAR}`` replaced (the pipeline config's reader)."""
    try:
        return read_yaml(path)
    except ConfigError as exc:
        raise ApiConfigError(str(exc)) from None


def _explain(exc: ValidationError, path: Path) -> ApiConfigError:
    lines = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"])
        msg = ("unknown key (check the spelling)" if err["type"] == "extra_forbidden"
               else err["msg"])
        lines.append(f"{path}: {key or '<top>'}: {msg}")
    return ApiConfigError("invalid API configuration\n  " + "\n  ".join(lines))


def load_api_config(path: str | Path) -> ApiConfig:
    """Load and validate ``conf/api.yaml`` (and its ``keys_file``, if set).

    Raises:
        ApiConfigError: naming the file and key of each problem.
    """
    path = Path(path)
    data = _read(path)
    keys_file = data.get("keys_file") or None
    if keys_file:
        kpath = Path(keys_file)
        if not kpath.is_absolute():
            kpath = path.parent / kpath
        extra = _read(kpath) if kpath.exists() else {}
        unknown = set(extra) - {"keys"}
        if unknown:
            raise ApiConfigError(f"{kpath}: unknown keys {sorted(unknown)}; only `keys:`")
        data["keys"] = [*(data.get("keys") or []), *(extra.get("keys") or [])]
    data["keys_file"] = keys_file
    try:
        return ApiConfig.model_validate(data)
    except ValidationError as exc:
        raise _explain(exc, path) from None
