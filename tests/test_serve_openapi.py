"""Fast checks of the Profile API without a lakehouse: the committed OpenAPI document,
the roles file, key minting and the role views (no Spark, no server)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from udp_spark.serve.access import RoleView, mask
from udp_spark.serve.keys import hash_key, key_id_of, main, mint_key, verify
from udp_spark.serve.settings import ApiConfigError, RoleConfig, load_api_config
from udp_spark.serve.snapshot import Consent, normalize_phone, plain

REPO = Path(__file__).resolve().parents[1]


def test_committed_openapi_document_is_current() -> None:
    from udp_spark.serve.openapi import render

    committed = (REPO / "docs" / "openapi.json").read_text(encoding="utf-8")
    assert json.loads(committed) == json.loads(render()), (
        "docs/openapi.json is stale: python -m udp_spark.serve.openapi > docs/openapi.json")


def test_roles_file_loads_and_bad_keys_are_named(tmp_path: Path) -> None:
    api = load_api_config(REPO / "conf" / "api.yaml")
    assert {"support", "marketing", "analyst"} <= set(api.roles)
    assert api.roles["marketing"].purpose == "email_marketing"
    bad = tmp_path / "api.yaml"
    bad.write_text("roles: {x: {endpoints: [profile], colour: red}}\n")
    with pytest.raises(ApiConfigError, match=r"roles\.x\.colour: unknown key"):
        load_api_config(bad)
    bad.write_text("roles: {x: {endpoints: [teleport]}}\n")
    with pytest.raises(ApiConfigError, match="unknown endpoints"):
        load_api_config(bad)
    _key, digest = mint_key("k1")
    bad.write_text(f"roles: {{x: {{endpoints: ['*']}}}}\nkeys: [{{id: k1, role: y, "
                   f"hash: '{digest}'}}]\n")
    with pytest.raises(ApiConfigError, match="unknown roles"):
        load_api_config(bad)


def test_a_short_jwt_secret_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from udp_spark.serve.security import Authenticator
    from udp_spark.serve.settings import ApiConfig, JwtSettings

    api = ApiConfig(roles={"r": RoleConfig(endpoints=("*",))}, jwt=JwtSettings())
    monkeypatch.setenv("UDP_API_JWT_SECRET", "short")
    with pytest.raises(ApiConfigError, match="shorter than 32 bytes"):
        Authenticator(api)
    monkeypatch.setenv("UDP_API_JWT_SECRET", "x" * 32)
    Authenticator(api)


def test_keys_are_random_hashed_and_checked(capsys: pytest.CaptureFixture[str]) -> None:
    key, digest = mint_key("support-desk")
    other, _ = mint_key("support-desk")
    assert key != other and key_id_of(key) == "support-desk"
    assert digest == hash_key(key) and digest.startswith("sha256:") and key not in digest
    assert verify(key, digest) and not verify(other, digest)
    assert key_id_of("udp_x.short") is None and key_id_of("bearer-thing") is None
    assert main(["--id", "desk-2", "--role", "support"]) == 0
    out = capsys.readouterr().out
    printed = out.split("stored): ")[1].split()[0]
    assert hash_key(printed) in out


def test_role_view_masks_filters_and_pseudonymizes() -> None:
    now = datetime.now(UTC)
    role = RoleConfig(endpoints=("profile",), purpose="email_marketing",
                      fields=("email", "phone", "lineage"), mask={"phone": "last4"})
    view = RoleView("marketing", role, b"k")
    row = {"customer_id": "C1", "email": "a@b.co", "phone": "+15550100123",
           "date_of_birth": "1990-01-01",
           "lineage": {"email": {"source": "crm"}, "date_of_birth": {"source": "crm"},
                       "phone": {"source": "crm"}}}
    out = view.project(row)
    assert out == {"customer_id": "C1", "email": "a@b.co", "phone": "********0123",
                   "lineage": {"email": {"source": "crm"}}}
    assert view.consented({"email_marketing": Consent(True, None)}, now)
    assert not view.consented({"email_marketing": Consent(False, None)}, now)
    assert not view.consented({"email_marketing": Consent(True, now - timedelta(days=1))},
                              now)
    assert not view.consented({}, now) and not view.consented(None, now)
    pseudo = RoleView("analyst", RoleConfig(endpoints=("profile",), pseudonymous=True), b"k")
    assert pseudo.project(row)["customer_id"].startswith("p_")
    assert pseudo.public_id("C1") == pseudo.public_id("C1") != "C1"
    assert mask("ann@example.com", "email") == "a***@example.com"
    assert mask("1990-01-01", "year") == "1990"


def test_plain_values_and_phone_normalization() -> None:
    from decimal import Decimal

    at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert plain(at) == "2026-01-02T03:04:05.000000Z"
    assert plain(Decimal("1.50")) == 1.5
    assert plain([("a", 1), ("b", None)]) == {"a": 1, "b": None}
    assert normalize_phone("(202) 555-0143", "US") == "+12025550143"
    assert normalize_phone("+44 20 7946 0958", "US") == "+442079460958"
    assert normalize_phone("not a phone", "US") is None
