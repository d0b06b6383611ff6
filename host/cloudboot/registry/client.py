"""Building an `oci.client.Client` for the CLI: credentials from flags, environment or docker config; TLS options."""

from __future__ import annotations

import base64
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

from oci.client import Client
from oci.ref import Reference, parse
from oci.transport_cpython import Transport


def docker_config_credentials(registry: str, config: Path | None = None) -> tuple[str, str] | None:
    """(user, password) for `registry` from $DOCKER_CONFIG/config.json or ~/.docker/config.json `auths`."""
    if config is None:
        base = os.environ.get("DOCKER_CONFIG")
        config = Path(base) / "config.json" if base else Path.home() / ".docker" / "config.json"
    try:
        doc = json.loads(config.read_text())
    except (OSError, ValueError):
        return None
    auths = doc.get("auths") if isinstance(doc, dict) else None
    if not isinstance(auths, dict):
        return None
    for key in (registry, "https://" + registry, "http://" + registry, "https://" + registry + "/v2/"):
        entry = auths.get(key)
        if not isinstance(entry, dict):
            continue
        if entry.get("auth"):
            try:
                user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                continue
            return user, password
        if entry.get("username") and entry.get("password"):
            return entry["username"], entry["password"]
    return None


def credentials_for(username: str | None, password: str | None) -> Callable[[str], tuple[str, str] | None]:
    """Flags first, then REGISTRY_USERNAME/REGISTRY_PASSWORD, then the docker config file."""
    username = username or os.environ.get("REGISTRY_USERNAME")
    password = password if password is not None else os.environ.get("REGISTRY_PASSWORD")

    def lookup(registry: str) -> tuple[str, str] | None:
        if username:
            return username, password or ""
        return docker_config_credentials(registry)

    return lookup


def add_registry_options(p) -> None:
    """--username/--password[-stdin], --plain-http, --insecure, --ca-file, --timeout (every registry verb)."""
    g = p.add_argument_group("registry")
    g.add_argument("--username", help="registry user (else $REGISTRY_USERNAME, else the docker config file)")
    g.add_argument("--password", help="registry password (else $REGISTRY_PASSWORD)")
    g.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    g.add_argument("--plain-http", action="store_true", help="talk plain HTTP (default only for 127.0.0.1/localhost)")
    g.add_argument("--insecure", action="store_true", help="TLS without certificate verification")
    g.add_argument("--ca-file", help="extra CA bundle (PEM) for the registry's certificate")
    g.add_argument("--timeout", type=float, default=60.0, help="seconds per connect/read (default 60)")


def client_from_args(args) -> Client:
    """A Client configured from add_registry_options's flags."""
    password = args.password
    if getattr(args, "password_stdin", False):
        password = sys.stdin.readline().rstrip("\n")
    transport = Transport(timeout=args.timeout, insecure=args.insecure, cafile=args.ca_file)
    return Client(transport, credentials=credentials_for(args.username, password),
                  log=lambda msg: print(f"cloud-boot: {msg}", file=sys.stderr))


def parse_ref(text: str, args=None) -> Reference:
    """Parse a reference honouring --plain-http (BadReference when it is malformed)."""
    return parse(text, plain_http=True if args is not None and getattr(args, "plain_http", False) else None)
