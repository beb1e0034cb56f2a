"""GET /api/v1/health: liveness for load balancers and devhost (no authentication)."""

from __future__ import annotations

from fastapi import APIRouter

from shared.api.responses import Health

router = APIRouter(tags=["health"])


@router.get("/api/v1/health", summary="Liveness", response_model=Health)
async def health() -> dict[str, str]:
    return {"status": "ok"}
