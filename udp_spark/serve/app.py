"""The FastAPI application: profile look-ups from the in-process snapshot, role-based
views, problem+json errors, an access log in ``audit.api_access``, and event / consent /
erasure intake.

Build it with :func:`create_app`; ``udp serve`` runs it under uvicorn.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import secrets
import time
import uuid
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, FastAPI, Path, Query, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from udp_spark.config import PipelineConfig
from udp_spark.serve import intake
from udp_spark.serve.access import HISTORY_META, RoleView
from udp_spark.serve.audit import AccessRow, AuditWriter
from udp_spark.serve.resolve import Resolver
from udp_spark.serve.security import Authenticator, AuthError, Principal, RateLimiter
from udp_spark.serve.settings import ApiConfig
from udp_spark.serve.snapshot import (
    TABLES,
    Snapshot,
    SnapshotStore,
    normalize_email,
    normalize_loyalty,
    normalize_phone,
)
from udp_spark.tables import Lakehouse

log = logging.getLogger(__name__)

PROBLEM = "application/problem+json"
MAX_EVENTS = 1000
ID_PATTERN = r"^[A-Za-z0-9_.:@+-]{1,200}$"


# --- errors ------------------------------------------------------------------------------

class Problem(BaseModel):
    """An error (RFC 9457 problem details)."""

    type: str
    title: str
    status: int
    detail: str
    errors: list[dict[str, str]] | None = None


class ApiProblem(Exception):
    """Raised by a route to answer with a problem+json body."""

    def __init__(self, status: int, slug: str, title: str, detail: str,
                 headers: dict[str, str] | None = None,
                 errors: list[dict[str, str]] | None = None) -> None:
        super().__init__(detail)
        self.status, self.slug, self.title, self.detail = status, slug, title, detail
        self.headers = headers
        self.errors = errors


def problem(status: int, slug: str, title: str, detail: str,
            headers: dict[str, str] | None = None,
            errors: list[dict[str, str]] | None = None) -> JSONResponse:
    body: dict[str, Any] = {"type": f"urn:udp-spark:problem:{slug}", "title": title,
                            "status": status, "detail": detail}
    if errors:
        body["errors"] = errors
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


_PROBLEM_CONTENT = {PROBLEM: {"schema": {"$ref": "#/components/schemas/Problem"}}}
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"description": text, "content": _PROBLEM_CONTENT}
    for code, text in ((401, "no or invalid credentials"), (403, "role may not call this"),
                       (404, "not found (or not available to this role)"),
                       (422, "invalid request; `errors` names the fields"),
                       (429, "rate limit exceeded; see Retry-After"),
                       (500, "internal error (details only in the server log)"))}


# --- response models ---------------------------------------------------------------------

class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ProfileOut(_Out):
    requested_id: str
    customer_id: str
    merged: bool = Field(description="the requested id was merged into customer_id")
    merged_chain: list[str]
    profile: dict[str, Any]
    table_version: int | None


class Match(_Out):
    customer_id: str
    matched_on: str
    profile: dict[str, Any]


class LookupOut(_Out):
    matches: list[Match]
    total: int
    next_offset: int | None


class LineageOut(_Out):
    customer_id: str
    lineage: dict[str, Any]
    records: list[dict[str, Any]]
    total: int
    next_offset: int | None


class HistoryOut(_Out):
    customer_id: str
    versions: list[dict[str, Any]]
    total: int
    next_offset: int | None


class EventsOut(_Out):
    customer_id: str
    events: list[dict[str, Any]]
    total: int
    next_offset: int | None


class CustomerSegmentsOut(_Out):
    customer_id: str
    segments: list[str]
    spells: list[dict[str, Any]]


class SegmentInfo(_Out):
    name: str
    members: int


class SegmentsOut(_Out):
    segments: list[SegmentInfo]


class MembersOut(_Out):
    segment: str
    members: list[str]
    total: int
    next_offset: int | None


class ConsentOut(_Out):
    customer_id: str
    consent: dict[str, Any]


class ExportOut(_Out):
    requested_id: str
    customer_id: str
    generated_at: datetime
    profile: dict[str, Any]
    records: list[dict[str, Any]]
    history: list[dict[str, Any]]
    identity_events: list[dict[str, Any]]
    segment_spells: list[dict[str, Any]]
    table_versions: dict[str, int | None]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


SubjectType = Literal["customer", "email", "phone", "record"]


class ConsentIn(_In):
    subject_type: SubjectType
    subject: str = Field(min_length=1, max_length=320)
    purpose: str = Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")
    status: Literal["granted", "withdrawn"]
    legal_basis: str | None = Field(default=None, max_length=64)
    source: str | None = Field(default="api", max_length=64)
    occurred_at: datetime | None = Field(default=None, description="default: now (UTC)")
    expires_at: datetime | None = None


class ConsentEventOut(_Out):
    event_id: str
    purpose: str
    status: str
    occurred_at: datetime
    recorded_at: datetime


class ErasureIn(_In):
    subject_type: SubjectType
    subject: str = Field(min_length=1, max_length=320)


class ErasureOut(_Out):
    request_id: str
    subject_type: str
    subject_hash: str
    requested_at: datetime
    requested_by: str
    status: str
    completed_at: datetime | None
    report: Any | None
    error: str | None


class LandedOut(_Out):
    source: str
    file: str
    accepted: int


class ResolveIn(_In):
    """A person record to resolve: any of the fields the matcher compares. Values are
    standardized as `udp standardize` does (a phone without +country is read in the API's
    `default_region`, or in `country`'s)."""

    given_name: str | None = Field(default=None, max_length=200)
    middle_name: str | None = Field(default=None, max_length=200)
    family_name: str | None = Field(default=None, max_length=200)
    email: str | None = Field(default=None, max_length=320)
    phone: str | None = Field(default=None, max_length=64)
    mobile: str | None = Field(default=None, max_length=64)
    street: str | None = Field(default=None, max_length=300)
    city: str | None = Field(default=None, max_length=200)
    postcode: str | None = Field(default=None, max_length=32)
    country: str | None = Field(default=None, max_length=100,
                                description="a name or an ISO code")
    date_of_birth: date | None = None
    birth_year: int | None = Field(default=None, ge=1, le=9999,
                                   description="when the full date is not known")
    gender: str | None = Field(default=None, max_length=32)
    loyalty_id: str | None = Field(default=None, max_length=64)
    identifiers: dict[str, Annotated[str, Field(max_length=200)]] | None = Field(
        default=None, max_length=20, description="mapped identifiers by key "
        "(party.identifiers of the sources), e.g. {\"national_id\": \"123-45-6789\"}")
    limit: int = Field(default=10, ge=1, le=50, description="candidates returned at most")


class ComparisonOut(_Out):
    comparison: str
    level: int = Field(description="-1 = missing on a side, 0 = disagreement, higher = "
                       "stronger agreement")
    label: str
    weight: float = Field(description="log2 Bayes factor this level adds to match_weight")


class CandidateOut(_Out):
    customer_id: str
    match_probability: float
    match_weight: float
    match: bool = Field(description="match_probability is at least the resolve threshold")
    matched_source: str = Field(description="source of the customer's record that matched "
                                "best (the comparisons are against it)")
    records_compared: int
    comparisons: list[ComparisonOut]
    profile: dict[str, Any]


class ResolveOut(_Out):
    candidates: list[CandidateOut]
    records_compared: int
    threshold: float
    model_version: str
    prior_weight: float


class HealthOut(_Out):
    status: str
    tables: dict[str, int | None]
    loaded_at: datetime
    refresh_error: str | None


# --- the app -----------------------------------------------------------------------------

class ServeState:
    """What the routes share: config, snapshot store, auth, limiter, audit, role views."""

    def __init__(self, cfg: PipelineConfig, api: ApiConfig) -> None:
        self.cfg = cfg
        self.api = api
        lake = Lakehouse(cfg.lakehouse)
        if cfg.lakehouse.catalog:
            raise ValueError("udp serve reads tables by path: lakehouse.catalog must be empty")

        def path(name: str) -> str:
            layer, table = name.split(".", 1)
            ref = lake.table(layer, table)
            assert ref.path is not None
            return ref.path

        self.store = SnapshotStore({name: path(name) for name in TABLES}, api.refresh_seconds)
        self.audit = AuditWriter(path("audit.api_access"), api.audit.flush_seconds,
                                 api.audit.flush_rows) if api.audit.enabled else None
        self.resolver = Resolver(cfg, path("silver.party_records"),
                                 path("silver.match_term_frequencies"), api.default_region,
                                 api.refresh_seconds)
        self.consent_path = path("privacy.consent_events")
        self.erasure_path = path("privacy.erasure_requests")
        key = os.environ.get(api.pseudonym_key_env)
        if not key:
            log.warning("serve: %s is not set: pseudonymous ids and look-up hashes use a "
                        "random key and change when the server restarts",
                        api.pseudonym_key_env)
        self.hash_key = (key or secrets.token_hex(32)).encode()
        self.auth = Authenticator(api)
        self.limiter = RateLimiter()
        self.views = {name: RoleView(name, role, self.hash_key)
                      for name, role in api.roles.items()}
        # role -> snapshot -> pseudonym -> customer id; dropped with its snapshot
        self._pid_maps: dict[str, weakref.WeakKeyDictionary[Snapshot, dict[str, str]]] = {}

    def lookup_hash(self, value: str) -> str:
        return hmac.new(self.hash_key, value.encode(), hashlib.sha256).hexdigest()[:32]

    def real_id(self, snap: Snapshot, view: RoleView, public_id: str) -> str:
        """The customer id behind an id as the role writes it (pseudonym or real)."""
        if not view.role.pseudonymous:
            return public_id
        maps = self._pid_maps.setdefault(view.name, weakref.WeakKeyDictionary())
        pids = maps.get(snap)
        if pids is None:
            ids = set(snap.profiles.rows) | set(snap.history.by_customer)
            pids = {view.public_id(c): c for c in ids}
            maps[snap] = pids
        return pids.get(public_id, "\x00unknown")


class Caller(BaseModel):
    """The authenticated caller of one request."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    principal: Principal
    view: RoleView
    snap: Snapshot


_api_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="an API key")
_bearer = HTTPBearer(auto_error=False, description="an API key or a signed JWT")


def _state(request: Request) -> ServeState:
    state: ServeState = request.app.state.serve
    return state


def guard(endpoint: str) -> Callable[..., Awaitable[Caller]]:
    """A dependency: authenticate, check the role may call ``endpoint``, rate limit."""

    async def dependency(
            request: Request,
            api_key: Annotated[str | None, Security(_api_key)] = None,
            bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)] = None,
    ) -> Caller:
        state = _state(request)
        request.state.endpoint = endpoint
        try:
            principal = state.auth.authenticate(
                api_key, bearer.credentials if bearer is not None else None)
        except AuthError as exc:
            raise ApiProblem(401, "unauthorized", "Unauthorized", exc.detail,
                             headers={"WWW-Authenticate": 'Bearer realm="udp"'}) from None
        request.state.principal = principal
        view = state.views[principal.role]
        if not view.role.may_call(endpoint):
            raise ApiProblem(403, "forbidden", "Forbidden",
                             f"role {principal.role!r} may not call {endpoint!r}")
        wait = state.limiter.take(principal.key_id, principal.rate_limit)
        if wait > 0:
            raise ApiProblem(429, "rate-limited", "Too Many Requests",
                             f"rate limit of {principal.rate_limit.per_second:g}/s exceeded; "
                             f"retry in {wait:.2f} s",
                             headers={"Retry-After": str(max(1, round(wait + 0.5)))})
        return Caller(principal=principal, view=view, snap=state.store.current)

    return dependency


Limit = Annotated[int, Query(ge=1, le=500, description="page size")]
Offset = Annotated[int, Query(ge=0, le=1_000_000_000, description="items to skip")]
CustomerId = Annotated[str, Path(pattern=ID_PATTERN, description="a customer id (a "
                                 "pseudonymous id for pseudonymous roles)")]


def _page(items: list[Any], limit: int, offset: int) -> tuple[list[Any], int, int | None]:
    total = len(items)
    end = offset + limit
    return items[offset:end], total, (end if end < total else None)


def _not_found(what: str) -> ApiProblem:
    return ApiProblem(404, "not-found", "Not Found", f"no {what} available to this role")


def _note(request: Request, *customer_ids: str) -> None:
    request.state.customer_ids = [*getattr(request.state, "customer_ids", []), *customer_ids]


def _customer(request: Request, caller: Caller, public_id: str, *, follow: bool = True
              ) -> tuple[str, list[str]]:
    """The customer an id names (following merges), checked against the role's consent."""
    state = _state(request)
    snap, view = caller.snap, caller.view
    cid = state.real_id(snap, view, public_id)
    chain: list[str] = []
    if cid not in snap.profiles.rows and follow:
        survivor, chain = snap.survivor(cid)
        cid = survivor if chain else cid
    _note(request, cid)
    if cid not in snap.profiles.rows:
        raise _not_found(f"customer {public_id!r}")
    if not view.consented(snap.profiles.consent_of(cid), datetime.now(UTC)):
        raise _not_found(f"customer {public_id!r}")
    return cid, chain


class AccessLog:
    """ASGI middleware: a request id on every answer, an ``audit.api_access`` row for every
    ``/v1`` request, and a problem+json 500 (never a trace) for an error nothing handled.

    Plain ASGI rather than ``@app.middleware("http")``: that one costs a task and a stream
    per request."""

    def __init__(self, app: ASGIApp, state: ServeState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = uuid.uuid4().hex
        status = 500
        response_started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status = message["status"]
                response_started = True
                MutableHeaders(scope=message).append("X-Request-Id", request_id)
            await send(message)

        try:
            length = dict(scope.get("headers") or []).get(b"content-length", b"0")
            if not length.isdigit() or int(length) > self.state.api.max_body_bytes:
                await problem(413, "too-large", "Content Too Large",
                              f"request bodies are limited to "
                              f"{self.state.api.max_body_bytes} bytes")(
                    scope, receive, send_with_id)
            else:
                await self.app(scope, receive, send_with_id)
        except Exception:
            log.exception("serve: unhandled error on %s %s", scope.get("method"),
                          scope.get("path"))
            if not response_started:
                await problem(500, "internal", "Internal Server Error",
                              "the request failed; the server log has the details")(
                    scope, receive, send_with_id)
        finally:
            self._audit(scope, request_id, status, started)

    def _audit(self, scope: Scope, request_id: str, status: int, started: float) -> None:
        audit = self.state.audit
        if audit is None or not str(scope.get("path", "")).startswith("/v1/"):
            return
        st = scope.get("state") or {}
        principal: Principal | None = st.get("principal")
        lookup = st.get("lookup")
        audit.add(AccessRow(
            request_id=request_id, at=datetime.now(UTC), method=str(scope.get("method")),
            status=status, key_id=principal.key_id if principal else None,
            role=principal.role if principal else None, endpoint=st.get("endpoint"),
            customer_ids=sorted(set(st.get("customer_ids") or [])),
            lookup_kind=lookup[0] if lookup else None,
            lookup_hash=self.state.lookup_hash(lookup[1]) if lookup else None,
            duration_ms=(time.perf_counter() - started) * 1000))


def create_app(cfg: PipelineConfig, api: ApiConfig) -> FastAPI:
    """The API over the lakehouse of ``cfg`` with the roles and keys of ``api``."""
    state = ServeState(cfg, api)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state.store.start()
        state.resolver.start()
        if state.audit is not None:
            state.audit.start()
        try:
            yield
        finally:
            state.store.stop()
            state.resolver.stop()
            if state.audit is not None:
                state.audit.stop()

    app = FastAPI(title="udp-spark Profile API", version="1", lifespan=lifespan,
                  description="Golden customer profiles, look-ups, lineage, segments, "
                  "consent, erasure requests and event intake, by role.")
    app.state.serve = state

    @app.exception_handler(ApiProblem)
    async def _api_problem(request: Request, exc: ApiProblem) -> Response:
        return problem(exc.status, exc.slug, exc.title, exc.detail, exc.headers, exc.errors)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        errors = [{"field": ".".join(str(p) for p in e.get("loc", ())),
                   "message": str(e.get("msg", ""))} for e in exc.errors()]
        first = errors[0] if errors else {"field": "request", "message": "invalid"}
        return problem(422, "invalid-request", "Unprocessable Content",
                       f"{first['field']}: {first['message']}", errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        title = {404: "Not Found", 405: "Method Not Allowed"}.get(exc.status_code, "Error")
        return problem(exc.status_code, title.lower().replace(" ", "-"), title,
                       str(exc.detail), headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> Response:  # pragma: no cover
        log.error("serve: unhandled error on %s", request.url.path, exc_info=exc)
        return problem(500, "internal", "Internal Server Error",
                       "the request failed; the server log has the details")

    @app.get("/health", response_model=HealthOut, tags=["service"])
    async def health() -> HealthOut:
        """Liveness and the table versions being served (no credentials needed)."""
        snap = state.store.current
        return HealthOut(status="ok", tables=snap.versions, loaded_at=snap.loaded_at,
                         refresh_error=state.store.last_error)

    app.include_router(_routes(state), prefix="/v1", responses=ERRORS)
    app.add_middleware(AccessLog, state=state)
    app.openapi_schema = None

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            from fastapi.openapi.utils import get_openapi

            schema = get_openapi(title=app.title, version=app.version,
                                 description=app.description, routes=app.routes)
            schema.setdefault("components", {}).setdefault("schemas", {})["Problem"] = \
                Problem.model_json_schema()
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def _routes(state: ServeState) -> APIRouter:
    r = APIRouter()

    @r.get("/profiles/{customer_id}", name="profile", response_model=ProfileOut,
           tags=["profiles"])
    async def get_profile(request: Request, customer_id: CustomerId,
                    caller: Annotated[Caller, Depends(guard("profile"))]) -> ProfileOut:
        """A golden profile; a merged-away id answers with its survivor (``merged``)."""
        cid, chain = _customer(request, caller, customer_id)
        view = caller.view
        return ProfileOut(requested_id=customer_id, customer_id=view.public_id(cid),
                          merged=bool(chain), merged_chain=[view.public_id(c) for c in chain],
                          profile=view.project(caller.snap.profiles.rows[cid]),
                          table_version=caller.snap.versions.get("gold.customer_profile"))

    @r.get("/lookup", name="lookup", response_model=LookupOut, tags=["profiles"])
    async def lookup(request: Request, caller: Annotated[Caller, Depends(guard("lookup"))],
               limit: Limit = 50, offset: Offset = 0,
               email: Annotated[str | None, Query(max_length=320)] = None,
               phone: Annotated[str | None, Query(max_length=64,
                                                  description="E.164 or as typed")] = None,
               region: Annotated[str | None, Query(pattern=r"^[A-Z]{2}$", description=
                                                   "region of a phone without +country")
                                 ] = None,
               loyalty_id: Annotated[str | None, Query(max_length=64)] = None,
               record_id: Annotated[str | None, Query(max_length=200, description=
                                                      "source:source_key")] = None,
               ) -> LookupOut:
        """Customers by e-mail, phone, loyalty id or source record id (give exactly one)."""
        given = {k: v for k, v in (("email", email), ("phone", phone),
                                   ("loyalty_id", loyalty_id), ("record_id", record_id))
                 if v is not None}
        if len(given) != 1:
            raise ApiProblem(422, "invalid-request", "Unprocessable Content",
                             "query: give exactly one of email, phone, loyalty_id, record_id",
                             errors=[{"field": "query", "message": "exactly one look-up key"}])
        kind, value = next(iter(given.items()))
        request.state.lookup = (kind, value)
        snap, view = caller.snap, caller.view
        ids: tuple[str, ...] = ()
        if kind == "email":
            ids = snap.profiles.by_email.get(normalize_email(value), ())
        elif kind == "phone":
            e164 = normalize_phone(value, region or state.api.default_region)
            ids = snap.profiles.by_phone.get(e164, ()) if e164 else ()
        elif kind == "loyalty_id":
            ids = snap.profiles.by_loyalty.get(normalize_loyalty(value), ())
        else:
            owner = snap.xref.customer_of.get(value.strip())
            ids = (owner,) if owner else ()
        now = datetime.now(UTC)
        # An id merged away since the record or value was indexed answers with its survivor.
        ids = tuple(dict.fromkeys(c if c in snap.profiles.rows else snap.survivor(c)[0]
                                  for c in ids))
        allowed = [c for c in ids if c in snap.profiles.rows
                   and view.consented(snap.profiles.consent_of(c), now)]
        page, total, nxt = _page(allowed, limit, offset)
        _note(request, *page)
        return LookupOut(matches=[Match(customer_id=view.public_id(c), matched_on=kind,
                                        profile=view.project(snap.profiles.rows[c]))
                                  for c in page], total=total, next_offset=nxt)

    @r.post("/resolve", name="resolve", response_model=ResolveOut, tags=["profiles"],
            responses={503: {"description": "the matcher or its index is not loaded (no "
                             "model registered, or its term frequencies not frozen yet)",
                             "content": _PROBLEM_CONTENT}})
    async def resolve(request: Request, body: ResolveIn,
                      caller: Annotated[Caller, Depends(guard("resolve"))]) -> ResolveOut:
        """Which existing customers a person record probably is: candidates sharing a
        blocking key (e-mail, phone, loyalty id, name and birth-date rules) scored by the
        registered matcher with its frozen term frequencies (the numbers `udp explain`
        gives for the same pair), best first. A customer's score is its best-matching
        record's; profiles are the caller's role view (consent-filtered)."""
        resolver = state.resolver
        current = resolver.current
        if current.unavailable is not None or current.scorer is None:
            raise ApiProblem(503, "unavailable", "Service Unavailable",
                             f"real-time resolution is not available: {current.unavailable}")
        raw = body.model_dump(exclude={"limit"})
        fields = resolver.standardize(raw, datetime.now(UTC).date())
        if fields.problems:
            errors = [{"field": f"body.{p.field}", "message": p.message}
                      for p in fields.problems]
            raise ApiProblem(422, "invalid-request", "Unprocessable Content",
                             f"{errors[0]['field']}: {errors[0]['message']}", errors=errors)
        record = fields.values
        if not any(record.get(c) for c in (
                "given_name_norm", "family_name_norm", "email_canonical", "phone_e164",
                "mobile_e164", "loyalty_id", "identifiers")):
            raise ApiProblem(422, "invalid-request", "Unprocessable Content",
                             "body: give at least a name, an e-mail, a phone, a loyalty id "
                             "or an identifier",
                             errors=[{"field": "body", "message": "nothing to match on"}])
        request.state.lookup = ("resolve", resolver.fingerprint(record))
        snap, view = caller.snap, caller.view
        best: dict[str, Any] = {}
        compared: dict[str, int] = {}
        matches = resolver.match(current, record)
        for m in matches:
            cid = snap.xref.customer_of.get(m.record_id)
            if cid is not None and cid not in snap.profiles.rows:
                cid = snap.survivor(cid)[0]  # merged away since the xref was read
            if cid is None or cid not in snap.profiles.rows:
                continue  # not resolved into a customer yet
            compared[cid] = compared.get(cid, 0) + 1
            held = best.get(cid)
            if held is None or (m.score.match_weight, held.record_id) > (
                    held.score.match_weight, m.record_id):
                best[cid] = m
        now = datetime.now(UTC)
        ranked = sorted((c for c in best if view.consented(snap.profiles.consent_of(c), now)),
                        key=lambda c: (-best[c].score.match_weight, c))[:body.limit]
        _note(request, *ranked)
        threshold = state.cfg.matching.resolve.threshold
        assert current.scorer is not None
        return ResolveOut(
            candidates=[CandidateOut(
                customer_id=view.public_id(c),
                match_probability=best[c].score.match_probability,
                match_weight=best[c].score.match_weight,
                match=best[c].score.match_probability >= threshold,
                matched_source=best[c].source, records_compared=compared[c],
                comparisons=[ComparisonOut(comparison=x.comparison, level=x.level,
                                           label=x.label, weight=x.weight)
                             for x in best[c].score.comparisons],
                profile=view.project(snap.profiles.rows[c])) for c in ranked],
            records_compared=len(matches), threshold=threshold,
            model_version=f"{state.cfg.matching.model.registered_name}/"
                          f"{current.model_version}",
            prior_weight=current.scorer.model.prior_weight)

    @r.get("/profiles/{customer_id}/lineage", name="lineage", response_model=LineageOut,
           tags=["profiles"])
    async def lineage(request: Request, customer_id: CustomerId,
                caller: Annotated[Caller, Depends(guard("lineage"))],
                limit: Limit = 50, offset: Offset = 0) -> LineageOut:
        """Where each value came from, and the source records behind the profile."""
        cid, _ = _customer(request, caller, customer_id)
        view, snap = caller.view, caller.snap
        projected = view.project(snap.profiles.rows[cid])
        records = snap.xref.records.get(cid, [])
        page, total, nxt = _page(records, limit, offset)
        return LineageOut(customer_id=view.public_id(cid),
                          lineage=projected.get("lineage") or {},
                          records=[{k: v for k, v in rec.items() if k != "_row_hash"}
                                   for rec in page],
                          total=total, next_offset=nxt)

    @r.get("/profiles/{customer_id}/history", name="history", response_model=HistoryOut,
           tags=["profiles"])
    async def history(request: Request, customer_id: CustomerId,
                caller: Annotated[Caller, Depends(guard("history"))],
                as_of: Annotated[datetime | None, Query(description=
                                                        "the version valid at this time")
                                 ] = None,
                limit: Limit = 50, offset: Offset = 0) -> HistoryOut:
        """Every version of the profile (SCD type 2), or the one valid ``as_of``."""
        snap, view = caller.snap, caller.view
        cid = state.real_id(snap, view, customer_id)
        if cid not in snap.history.by_customer:
            cid, _ = _customer(request, caller, customer_id)
        else:
            _note(request, cid)
            if not view.consented(snap.profiles.consent_of(cid), datetime.now(UTC)):
                raise _not_found(f"customer {customer_id!r}")
        versions = snap.history.by_customer.get(cid, [])
        if as_of is not None:
            at = as_of if as_of.tzinfo else as_of.replace(tzinfo=UTC)

            def valid(v: dict[str, Any]) -> bool:
                start, end = v.get("valid_from"), v.get("valid_to")
                if not isinstance(start, str) or datetime.fromisoformat(start) > at:
                    return False
                return not isinstance(end, str) or at < datetime.fromisoformat(end)

            versions = [v for v in versions if valid(v)]
        page, total, nxt = _page(versions, limit, offset)
        return HistoryOut(customer_id=view.public_id(cid),
                          versions=[view.project(v, HISTORY_META) for v in page],
                          total=total, next_offset=nxt)

    @r.get("/profiles/{customer_id}/identity-events", name="identity_events",
           response_model=EventsOut, tags=["profiles"])
    async def identity_events(request: Request, customer_id: CustomerId,
                        caller: Annotated[Caller, Depends(guard("identity_events"))],
                        limit: Limit = 50, offset: Offset = 0) -> EventsOut:
        """Created / merged / split events of the customer and the ids merged into it."""
        cid, chain = _customer(request, caller, customer_id)
        snap, view = caller.snap, caller.view
        requested = state.real_id(snap, view, customer_id)
        events: list[dict[str, Any]] = []
        for key in dict.fromkeys([cid, requested, *chain]):
            events.extend(ev for ev in snap.events.by_customer.get(key, [])
                          if ev not in events)  # one event may name two of the ids
        events.sort(key=lambda e: (e.get("event_at") or "", e.get("event_type") or ""))
        if view.role.pseudonymous:
            events = [{**e, "customer_id": view.public_id(e["customer_id"])
                       if e.get("customer_id") else None,
                       "related_customer_id": view.public_id(e["related_customer_id"])
                       if e.get("related_customer_id") else None} for e in events]
        page, total, nxt = _page(events, limit, offset)
        return EventsOut(customer_id=view.public_id(cid), events=page, total=total,
                         next_offset=nxt)

    @r.get("/profiles/{customer_id}/segments", name="customer_segments",
           response_model=CustomerSegmentsOut, tags=["segments"])
    async def customer_segments(request: Request, customer_id: CustomerId,
                          caller: Annotated[Caller, Depends(guard("customer_segments"))]
                          ) -> CustomerSegmentsOut:
        """The segments the customer is in now, and every spell in and out of one."""
        cid, _ = _customer(request, caller, customer_id)
        snap, view = caller.snap, caller.view
        spells = snap.segments.spells.get(cid, [])
        current = sorted({s["segment"] for s in spells if s.get("exited_at") is None})
        return CustomerSegmentsOut(
            customer_id=view.public_id(cid), segments=current,
            spells=[{**s, "customer_id": view.public_id(cid)} for s in spells])

    @r.get("/segments", name="segments", response_model=SegmentsOut, tags=["segments"])
    async def segments(caller: Annotated[Caller, Depends(guard("segments"))]) -> SegmentsOut:
        """Every segment with its number of current members."""
        members = caller.snap.segments.members
        return SegmentsOut(segments=[SegmentInfo(name=n, members=len(m))
                                     for n, m in sorted(members.items())])

    @r.get("/segments/{segment}/members", name="segment_members", response_model=MembersOut,
           tags=["segments"])
    async def segment_members(request: Request,
                        segment: Annotated[str, Path(pattern=r"^[A-Za-z0-9_]{1,100}$")],
                        caller: Annotated[Caller, Depends(guard("segment_members"))],
                        limit: Limit = 100, offset: Offset = 0) -> MembersOut:
        """Current members (open spells), ordered by customer id; consent-filtered."""
        snap, view = caller.snap, caller.view
        if segment not in snap.segments.members:
            raise _not_found(f"segment {segment!r}")
        now = datetime.now(UTC)
        ids = snap.segments.members[segment]
        if view.role.purpose is not None:
            ids = [c for c in ids if view.consented(snap.profiles.consent_of(c), now)]
        page, total, nxt = _page(ids, limit, offset)
        _note(request, *page)
        return MembersOut(segment=segment, members=[view.public_id(c) for c in page],
                          total=total, next_offset=nxt)

    @r.get("/profiles/{customer_id}/consent", name="consent_read", response_model=ConsentOut,
           tags=["privacy"])
    async def consent_read(request: Request, customer_id: CustomerId,
                     caller: Annotated[Caller, Depends(guard("consent_read"))]) -> ConsentOut:
        """The customer's consent state by purpose (as last published)."""
        cid, _ = _customer(request, caller, customer_id)
        raw = caller.snap.profiles.rows[cid].get("consent") or {}
        return ConsentOut(customer_id=caller.view.public_id(cid),
                          consent=raw if isinstance(raw, dict) else {})

    @r.get("/profiles/{customer_id}/export", name="export", response_model=ExportOut,
           tags=["privacy"])
    async def export(request: Request, customer_id: CustomerId,
               caller: Annotated[Caller, Depends(guard("export"))]) -> ExportOut:
        """Subject access: what the gold tables hold about the customer (the profile, its
        source records, every version, identity events, segment spells), in the role's
        view, at the table versions listed."""
        cid, chain = _customer(request, caller, customer_id)
        snap, view = caller.snap, caller.view
        ids = dict.fromkeys([cid, *chain, state.real_id(snap, view, customer_id)])
        history = [view.project(v, HISTORY_META) for i in ids
                   for v in snap.history.by_customer.get(i, [])]
        events: list[dict[str, Any]] = []
        for i in ids:
            events.extend(e for e in snap.events.by_customer.get(i, []) if e not in events)
        records = [{k: v for k, v in rec.items() if k != "_row_hash"}
                   for rec in snap.xref.records.get(cid, [])]
        return ExportOut(requested_id=customer_id, customer_id=view.public_id(cid),
                         generated_at=datetime.now(UTC),
                         profile=view.project(snap.profiles.rows[cid]), records=records,
                         history=history, identity_events=events,
                         segment_spells=snap.segments.spells.get(cid, []),
                         table_versions=snap.versions)

    @r.post("/consent", name="consent_write", response_model=ConsentEventOut,
            status_code=201, tags=["privacy"])
    def consent_write(request: Request, body: ConsentIn,
                      caller: Annotated[Caller, Depends(guard("consent_write"))]
                      ) -> ConsentEventOut:
        """Record a consent decision in ``privacy.consent_events`` (published later)."""
        purposes = getattr(getattr(state.cfg, "privacy", None), "purposes", None)
        try:
            if purposes and body.purpose not in purposes:
                raise intake.IntakeError("body.purpose", f"unknown purpose; privacy.purposes "
                                         f"are {sorted(purposes)}")
            subject = intake.normalize_subject(body.subject_type, body.subject,
                                               state.api.default_region)
        except intake.IntakeError as exc:
            raise ApiProblem(422, "invalid-request", "Unprocessable Content", str(exc),
                             errors=[{"field": exc.field, "message": exc.message}]) from None
        _subject_note(request, body.subject_type, subject)
        occurred = body.occurred_at or datetime.now(UTC)
        if body.expires_at is not None and _aware(body.expires_at) <= _aware(occurred):
            raise ApiProblem(422, "invalid-request", "Unprocessable Content",
                             "body.expires_at: must be after occurred_at",
                             errors=[{"field": "body.expires_at", "message": "not after "
                                      "occurred_at"}])
        row = intake.append_consent_event(
            state.consent_path, subject_type=body.subject_type, subject=subject,
            purpose=body.purpose, status=body.status,
            legal_basis=body.legal_basis or "consent",
            source=body.source, occurred_at=occurred, expires_at=body.expires_at,
            run_id=f"api:{caller.principal.key_id}")
        return ConsentEventOut(event_id=row["event_id"], purpose=row["purpose"],
                               status=row["status"], occurred_at=row["occurred_at"],
                               recorded_at=row["recorded_at"])

    @r.post("/erasure-requests", name="erasure_write", response_model=ErasureOut,
            status_code=202, tags=["privacy"])
    def erasure_write(request: Request, body: ErasureIn,
                      caller: Annotated[Caller, Depends(guard("erasure_write"))]
                      ) -> ErasureOut:
        """Ask for a subject's erasure; ``udp erase --pending`` carries it out. Poll the
        returned request's status."""
        try:
            subject = intake.normalize_subject(body.subject_type, body.subject,
                                               state.api.default_region)
        except intake.IntakeError as exc:
            raise ApiProblem(422, "invalid-request", "Unprocessable Content", str(exc),
                             errors=[{"field": exc.field, "message": exc.message}]) from None
        _subject_note(request, body.subject_type, subject)
        row = intake.append_erasure_request(state.erasure_path,
                                            subject_type=body.subject_type,
                                            subject=subject,
                                            requested_by=caller.principal.key_id,
                                            salt=_erasure_salt(state.cfg))
        return _erasure_out(row)

    @r.get("/erasure-requests/{request_id}", name="erasure_read", response_model=ErasureOut,
           tags=["privacy"])
    def erasure_read(request_id: Annotated[str, Path(pattern=r"^[0-9a-f]{32}$")],
                     caller: Annotated[Caller, Depends(guard("erasure_read"))]) -> ErasureOut:
        """An erasure request's status (never its subject)."""
        row = intake.read_erasure_request(state.erasure_path, request_id)
        if row is None:
            raise _not_found(f"erasure request {request_id!r}")
        return _erasure_out(row)

    @r.post("/events/{source}", name="events_write", response_model=LandedOut,
            status_code=202, tags=["intake"])
    def events_write(source: Annotated[str, Path(pattern=r"^[a-z][a-z0-9_]{0,63}$")],
                     caller: Annotated[Caller, Depends(guard("events_write"))],
                     body: Annotated[dict[str, Any] | list[dict[str, Any]], Body(
                         description="one event or a list of events: JSON objects of the "
                         "source's columns")]) -> LandedOut:
        """Validate events against the source's mapping and land them as a new JSON-lines
        file in its landing folder, where the stream picks them up."""
        src = state.cfg.sources.get(source)
        if src is None:
            raise _not_found(f"source {source!r}")
        events = body if isinstance(body, list) else [body]
        if not events or len(events) > MAX_EVENTS:
            raise ApiProblem(422, "invalid-request", "Unprocessable Content",
                             f"body: send 1 to {MAX_EVENTS} events",
                             errors=[{"field": "body", "message": "1 to 1000 events"}])
        try:
            intake.landing_dir(state.cfg, src)
            for i, event in enumerate(events):
                intake.validate_event(src, event, f"body.{i}" if isinstance(body, list)
                                      else "body")
            path = intake.land_events(state.cfg, src, events)
        except intake.IntakeError as exc:
            raise ApiProblem(422, "invalid-event", "Unprocessable Content", str(exc),
                             errors=[{"field": exc.field, "message": exc.message}]) from None
        except intake.UnsupportedSource as exc:
            raise ApiProblem(422, "unsupported-source", "Unprocessable Content",
                             str(exc)) from None
        return LandedOut(source=source, file=path.name, accepted=len(events))

    def _subject_note(request: Request, subject_type: str, subject: str) -> None:
        if subject_type == "customer":
            _note(request, subject)
        else:
            request.state.lookup = (subject_type, subject)

    return r


def _erasure_salt(cfg: PipelineConfig) -> str | None:
    erasure = getattr(getattr(cfg, "privacy", None), "erasure", None)
    salt = getattr(erasure, "suppression_salt", None)
    return salt if isinstance(salt, str) else None


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _erasure_out(row: dict[str, Any]) -> ErasureOut:
    report = row.get("report")
    if isinstance(report, str):
        with suppress(ValueError):
            report = json.loads(report)
    return ErasureOut(request_id=row["request_id"], subject_type=row["subject_type"],
                      subject_hash=row["subject_hash"], requested_at=row["requested_at"],
                      requested_by=row["requested_by"], status=row["status"],
                      completed_at=row.get("completed_at"), report=report,
                      error=row.get("error"))
