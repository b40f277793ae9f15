"""API keys: minted here, stored only as hashes, checked in constant time.

A key is ``udp_<key id>.<43 random url-safe characters>`` (256 bits from ``secrets``). Such a
key cannot be guessed, so one SHA-256 of it is as safe to store as a slow password hash and
costs microseconds per request (slow hashes like scrypt exist for low-entropy passwords).
The id inside the key finds its entry without scanning every hash.

Mint a key (prints the key once and the YAML entry to paste under ``keys:``)::

    python -m udp_spark.serve.keys --id support-desk --role support
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import logging
import secrets
import sys

log = logging.getLogger(__name__)
PREFIX = "udp_"


def hash_key(key: str) -> str:
    """The stored form of a key: ``sha256:<hex>``."""
    return "sha256:" + hashlib.sha256(key.encode("utf-8")).hexdigest()


def mint_key(key_id: str) -> tuple[str, str]:
    """A new key for ``key_id`` and its hash: ``(key, "sha256:...")``."""
    key = f"{PREFIX}{key_id}.{secrets.token_urlsafe(32)}"
    return key, hash_key(key)


def key_id_of(key: str) -> str | None:
    """The id a presented key claims (None when it is not shaped like a key)."""
    if not key.startswith(PREFIX) or len(key) > 200:
        return None
    body = key[len(PREFIX):]
    key_id, sep, secret = body.partition(".")  # ids have no '.', secrets no '.'

    return key_id if sep and key_id and len(secret) >= 32 else None


def verify(key: str, stored_hash: str) -> bool:
    """True when ``key`` hashes to ``stored_hash`` (constant-time comparison)."""
    return hmac.compare_digest(hash_key(key), stored_hash)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Mint an API key for udp serve.")
    parser.add_argument("--id", required=True, help="public key id, e.g. support-desk")
    parser.add_argument("--role", required=True, help="a role of conf/api.yaml")
    args = parser.parse_args(argv)
    key, digest = mint_key(args.id)
    if key_id_of(key) != args.id:
        parser.error("--id: use lower-case letters, digits, '-' and '_'")
    # The key goes to stdout once; it is never stored.
    sys.stdout.write(f"key (give it to the client; it is not stored): {key}\n"
                     f"entry for keys: in the keys file:\n"
                     f"  - {{id: {args.id}, role: {args.role}, hash: \"{digest}\"}}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
