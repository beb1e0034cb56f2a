"""devhost's state directory: secrets it generates on first use and keeps across restarts.

``HERALD_DEVHOST_STATE`` or ``<repo>/.local/devhost`` (gitignored, so nothing here is committed) holds
the local issuer's signing key (devhost/issuer.py) and the host's system keys, each file 0600.

System keys are what the Functions host requires on its extension webhooks: the Event Grid
extension's ``/runtime/webhooks/eventgrid`` takes the ``eventgrid_extension`` key as the
``x-functions-key`` header or the ``code`` query parameter, and so does devhost.
"""

from __future__ import annotations

import hmac
import os
import secrets
from pathlib import Path

_REPO_ROOT = Path(__file__).resolve().parent.parent
EVENTGRID_KEY_NAME = "eventgrid_extension"
SYSTEM_KEY_NAMES = (EVENTGRID_KEY_NAME,)
KEY_HEADER = "x-functions-key"
KEY_QUERY_PARAMETER = "code"


def default_state_dir() -> Path:
    """``HERALD_DEVHOST_STATE`` or ``<repo>/.local/devhost``."""
    configured = os.environ.get("HERALD_DEVHOST_STATE")
    return Path(configured) if configured else _REPO_ROOT / ".local" / "devhost"


def write_private(path: Path, data: bytes) -> bool:
    """Create ``path`` 0600 from the start (never briefly world-readable), only if absent.

    Returns False when another process (``devhost start`` vs ``devhost token``) created it first.
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    try:
        os.link(tmp, path)  # atomic create-if-absent
        return True
    except FileExistsError:
        return False
    finally:
        tmp.unlink()


def system_key_path(state_dir: Path, name: str) -> Path:
    if name not in SYSTEM_KEY_NAMES:
        raise ValueError(f"unknown system key {name!r}; devhost has {', '.join(SYSTEM_KEY_NAMES)}")
    return state_dir / f"{name}.key"


def ensure_system_key(name: str, state_dir: Path | str | None = None) -> str:
    """The system key ``name``, generated (256 random bits) into the state directory on first use."""
    path = system_key_path(Path(state_dir) if state_dir is not None else default_state_dir(), name)
    if not path.exists():
        write_private(path, (secrets.token_urlsafe(32) + "\n").encode("ascii"))
    return path.read_text(encoding="ascii").strip()


def key_matches(presented: str | None, key: str) -> bool:
    """Constant-time comparison, so response timing does not reveal how much of a guess was right."""
    return presented is not None and hmac.compare_digest(presented.encode("utf-8"), key.encode("utf-8"))
