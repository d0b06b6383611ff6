"""Building an `oci.client.Client` for the CLI: credentials from flags, environment or docker config; TLS options."""

from __future__ import annotations

import base64
import json
import os
import ssl
import sys
from collections.abc import Callable
from pathlib import Path

from cloudboot.cliopts import positive, utf8_bytes
from cloudboot.errors import CloudBootError
from oci.client import Client
from oci.ref import Reference, parse
from oci.transport_cpython import Transport

DEADLINE = 600.0  # seconds for one request, a layer's whole download included (4 GiB at 7 MB/s)
IDLE = 60.0  # seconds a connection may stay silent
TIMEOUT_MAX = 7 * 86400  # the largest --timeout: a week (far larger values overflow the timers' time_t)


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
    for what, value in (("the registry user name", username), ("the registry password", password)):
        if value:
            utf8_bytes(value, what)  # a non-UTF-8 byte would fail in the Basic header, mid-request

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
    g.add_argument("--timeout", type=positive(float, TIMEOUT_MAX), default=DEADLINE,
                   help=f"seconds for each whole request, connect to last byte (default {DEADLINE:g}); a connection "
                        f"silent for {IDLE:g} s is given up sooner")


def client_from_args(args) -> Client:
    """A Client configured from add_registry_options's flags."""
    password = args.password
    if getattr(args, "password_stdin", False):
        password = sys.stdin.readline().rstrip("\n")
    from oci.hash_cpython import BackgroundSha256
    from oci.mirrors import Endpoints
    from oci.srv import Resolver

    try:
        transport = Transport(timeout=IDLE, deadline=args.timeout, insecure=args.insecure, cafile=args.ca_file)
    except (OSError, ssl.SSLError) as exc:  # only the CA bundle is read here
        raise CloudBootError(f"--ca-file {args.ca_file}: {getattr(exc, 'strerror', None) or exc}") from None
    say = lambda msg: print(f"cloud-boot: {msg}", file=sys.stderr)  # noqa: E731
    # `_oci._tcp.<domain>` registries resolve through the name servers of /etc/resolv.conf (DNS SRV)
    return Client(transport, credentials=credentials_for(args.username, password), log=say,
                  endpoints=Endpoints(resolver=Resolver.from_resolv_conf(), log=say), sha256=BackgroundSha256)


def parse_ref(text: str, args=None) -> Reference:
    """Parse a reference honouring --plain-http (BadReference when it is malformed)."""
    return parse(text, plain_http=True if args is not None and getattr(args, "plain_http", False) else None)
