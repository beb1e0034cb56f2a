"""GET /api/v1/health: liveness for load balancers and devhost (no authentication)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["health"])


@router.get("/api/v1/health", summary="Liveness")
async def health() -> dict[str, str]:
    return {"status": "ok"}
