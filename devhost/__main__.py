"""``python -m devhost start|token|key``: a thin CLI over devhost.host, devhost.issuer and devhost.state."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from devhost.azurite import AzuritePorts
from devhost.state import SYSTEM_KEY_NAMES


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m devhost", description="Herald's local Functions host.")
    commands = parser.add_subparsers(dest="command", required=True)

    start = commands.add_parser("start", help="run function_app.app with Azurite, like `func start`")
    start.add_argument("--host", help="listen address (env HERALD_DEVHOST_HOST, default 127.0.0.1)")
    start.add_argument("--port", type=int, help="HTTP port (env HERALD_DEVHOST_PORT, default 7071)")
    start.add_argument("--blob-port", type=int, help="Azurite blob port (env HERALD_AZURITE_BLOB_PORT, default 10000)")
    start.add_argument(
        "--queue-port", type=int, help="Azurite queue port (env HERALD_AZURITE_QUEUE_PORT, default 10001)"
    )
    start.add_argument(
        "--table-port", type=int, help="Azurite table port (env HERALD_AZURITE_TABLE_PORT, default 10002)"
    )
    start.add_argument("--no-azurite", action="store_true", help="do not start Azurite; require one already running")
    start.add_argument(
        "--storage-connection",
        action="store_true",
        help="leave HeraldStorage as configured and do not start or check Azurite",
    )
    start.add_argument(
        "--no-provision",
        action="store_true",
        help="skip shared.composition.storage (tables); trigger queues are still created",
    )
    start.add_argument("--app", default="function_app:app", help="module:attribute of the FunctionApp")
    start.add_argument("--root", type=Path, help="repository root (default: the one holding devhost/)")
    start.add_argument("--state-dir", type=Path, help="issuer key directory (env HERALD_DEVHOST_STATE)")
    start.add_argument(
        "--instances",
        type=int,
        default=1,
        help="worker processes on the same Azurite, each like a Functions instance (default 1)",
    )
    # Set by the supervisor of several instances on each one it starts.
    start.add_argument("--instance", type=int, help=argparse.SUPPRESS)
    start.add_argument("--ready-fd", type=int, help=argparse.SUPPRESS)
    start.add_argument("-v", "--verbose", action="store_true", help="debug logging")

    token = commands.add_parser("token", help="print a signed access token from the local issuer")
    token.add_argument("--sub", required=True, help="subject, e.g. org:991825827")
    token.add_argument(
        "--scope", action="append", default=[], help='space-separated scopes, e.g. "events.publish events.read"'
    )
    token.add_argument("--ttl", type=int, default=3600, help="lifetime in seconds (default 3600)")
    token.add_argument("--aud", help="audience (env HERALD_AUTH_AUDIENCE, default api://herald)")
    token.add_argument("--iss", help="issuer (env HERALD_AUTH_ISSUER, default http://127.0.0.1:7071/devhost)")
    token.add_argument("--state-dir", type=Path, help="issuer key directory (env HERALD_DEVHOST_STATE)")

    key = commands.add_parser("key", help="print a system key (created on first use), e.g. for the Event Grid webhook")
    key.add_argument("name", choices=SYSTEM_KEY_NAMES, help="the key's name, as the Functions host names it")
    key.add_argument("--state-dir", type=Path, help="state directory (env HERALD_DEVHOST_STATE)")
    return parser


def _start(args: argparse.Namespace) -> int:
    from devhost.host import REPO_ROOT, StartConfig, run_start

    ports = None
    if args.blob_port or args.queue_port or args.table_port:
        from devhost.azurite import ports_from_env

        defaults = ports_from_env()
        ports = AzuritePorts(
            blob=args.blob_port or defaults.blob,
            queue=args.queue_port or defaults.queue,
            table=args.table_port or defaults.table,
        )
    config = StartConfig(
        root=args.root or REPO_ROOT,
        app_ref=args.app,
        host=args.host,
        port=args.port,
        ports=ports,
        manage_azurite=not args.no_azurite,
        keep_storage_connection=args.storage_connection,
        state_dir=args.state_dir,
        provision_app=not args.no_provision,
        instances=args.instances,
        instance=args.instance,
        ready_fd=args.ready_fd,
    )
    return run_start(config)


def _token(args: argparse.Namespace) -> int:
    from devhost.issuer import issue_token, split_scopes

    print(
        issue_token(
            args.sub,
            split_scopes(args.scope),
            ttl=args.ttl,
            audience=args.aud,
            issuer=args.iss,
            state_dir=args.state_dir,
        )
    )
    return 0


def _key(args: argparse.Namespace) -> int:
    from devhost.state import ensure_system_key

    print(ensure_system_key(args.name, args.state_dir))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "token":
        return _token(args)
    if args.command == "key":
        return _key(args)
    if args.instances < 1:
        _parser().error("--instances must be at least 1")
    # Each instance's lines say which instance wrote them; the supervisor's say "supervisor".
    who = "" if args.instances == 1 else ("[supervisor] " if args.instance is None else f"[instance {args.instance}] ")
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format=f"%(asctime)s %(levelname)s {who}%(message)s",
    )
    # The Azure SDK logs every HTTP call at INFO; keep devhost's own lines readable.
    logging.getLogger("azure").setLevel(logging.WARNING)
    return _start(args)


if __name__ == "__main__":
    sys.exit(main())
