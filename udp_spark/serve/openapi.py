"""The OpenAPI document of the Profile API, as committed in ``docs/openapi.json``.

Regenerate after changing a route: ``python -m udp_spark.serve.openapi > docs/openapi.json``
(``tests/test_serve_openapi.py`` fails while the committed file differs).
"""

from __future__ import annotations

import json
import sys
from typing import Any

from udp_spark.config import PipelineConfig
from udp_spark.serve.app import create_app
from udp_spark.serve.settings import ApiConfig, RoleConfig


def document() -> dict[str, Any]:
    """The document; it depends on the code only, not on roles, keys or the lakehouse."""
    api = ApiConfig(roles={"any": RoleConfig(endpoints=("*",))})
    return create_app(PipelineConfig(), api).openapi()


def render() -> str:
    return json.dumps(document(), indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
