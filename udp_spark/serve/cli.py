"""``udp serve``: load both configurations, build the app, run uvicorn."""

from __future__ import annotations

import logging
from pathlib import Path

from udp_spark.config import load_config
from udp_spark.serve.app import create_app
from udp_spark.serve.settings import load_api_config

log = logging.getLogger(__name__)


def run_server(config: Path, api_config: Path, *, host: str = "127.0.0.1", port: int = 8000,
               data_root: str | None = None, lakehouse: str | None = None) -> None:
    """Serve until interrupted. Config errors raise before the port is opened."""
    import uvicorn

    cfg = load_config(config, data_root=data_root, lakehouse_root=lakehouse)
    api = load_api_config(api_config)
    app = create_app(cfg, api)
    log.info("serve: lakehouse %s, %d roles, %d keys, http://%s:%d/docs", cfg.lakehouse.root,
             len(api.roles), len(api.keys), host, port)
    uvicorn.run(app, host=host, port=port, log_level="info", access_log=False,
                server_header=False)
