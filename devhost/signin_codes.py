"""Authorization codes of the local issuer, kept where every devhost instance finds them.

With ``devhost start --instances N`` the token request may reach another instance than the one that
answered the sign-in form, so codes live in the state directory the instances share, one file per
code (named by the code's SHA-256, so the directory never holds a usable code), and are taken by an
atomic rename: of two requests presenting one code, exactly one gets it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
from pathlib import Path
from typing import Any

CODES_DIRECTORY = "signin-codes"


class CodeStore:
    def __init__(self, state_dir: Path) -> None:
        self._directory = state_dir / CODES_DIRECTORY

    def _path(self, code: str) -> Path:
        return self._directory / hashlib.sha256(code.encode()).hexdigest()

    def put(self, code: str, grant: dict[str, Any]) -> None:
        self._directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = self._path(code)
        draft = path.with_name(f"{path.name}.{secrets.token_hex(4)}.new")
        draft.write_text(json.dumps(grant), encoding="utf-8")
        draft.chmod(0o600)
        os.replace(draft, path)

    def take(self, code: str) -> dict[str, Any] | None:
        """The grant stored for ``code``, removed; None if there is none (or another request took it)."""
        path = self._path(code)
        taken = path.with_name(f"{path.name}.{secrets.token_hex(4)}.taken")
        try:
            os.rename(path, taken)
        except OSError:
            return None
        try:
            document: dict[str, Any] = json.loads(taken.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        finally:
            with contextlib.suppress(OSError):
                taken.unlink()
        return document

    def forget_expired(self, now: float) -> None:
        if not self._directory.is_dir():
            return
        for path in self._directory.iterdir():
            with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
                if float(json.loads(path.read_text(encoding="utf-8"))["expires_at"]) <= now:
                    path.unlink()
