"""The ``Link: <…>; rel="next"`` header of a paged list: the one builder every paged route uses."""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlencode

from fastapi import Request

from shared.api.dependencies import use_cases


async def next_link(
    request: Request, token: str | None, *, name: str = "after", drop: Iterable[str] = ()
) -> dict[str, str]:
    """The header reading on from ``token`` in the query parameter ``name`` (none when there is no next
    page), the request's other parameters kept but those in ``drop``. From the configured public URL,
    never the request's Host: a forged Host must not steer the caller (and its token) elsewhere."""
    if token is None:
        return {}
    left_out = {name, *drop}
    query = {key: value for key, value in request.query_params.items() if key not in left_out}
    query[name] = token
    base = (await use_cases(request)).settings.public_base_url.rstrip("/")
    return {"Link": f'<{base}{request.url.path}?{urlencode(query)}>; rel="next"'}
