"""The Obeya room: every live service on one wall screen, in words and icons as well as
colour, kept live by server-sent events (``/room/events``) that tell the page to fetch its
panels again (``/room/?partial=1``). Read through ``obeya.metrics.services``; nothing here
writes.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Mapping
from typing import Any

from asgiref.sync import sync_to_async
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import render

from obeya.core.clock import SYSTEM_CLOCK
from obeya.metrics import services
from obeya.metrics.views import METRICS, figure, percent, trend_view

ROOM_POLL_S = 2.0
KEEP_ALIVE_S = 15.0
STREAM_S = 600.0  # then the browser reconnects by itself (the retry below)


def _wip(column: services.ColumnTile) -> dict[str, Any]:
    if column.limit is None:
        return {"name": column.name, "count": f"{column.cards}", "state": "", "limit": False}
    state = "OVER" if column.over else "FULL" if column.cards == column.limit else ""
    return {
        "name": column.name,
        "count": f"{column.cards}/{column.limit}",
        "state": state,
        "limit": True,
    }


def _room_dora(name: str, tile: Mapping[str, Any]) -> dict[str, Any]:
    label, _ = METRICS[name]
    band = str(tile.get("band") or "no data")
    return {
        "metric": name,
        "label": label,
        "value": figure(name, tile.get("value"), band),
        "band": band,
        "banded": not band.startswith("no "),
        "trend": trend_view(name, tile.get("trend") or {}, tile.get("previous"), band),
        "count": int(tile.get("count") or 0),
    }


def _budget(left: float | None, alert: str) -> dict[str, str]:
    if left is None:
        return {"text": "no SLO set", "state": "none", "alert": ""}
    state = "exhausted" if left <= 0 else "low" if left < 0.25 or alert else "ok"
    return {"text": f"{percent(left)} left", "state": state, "alert": alert}


def room_panel(tile: services.ServiceTile) -> dict[str, Any]:
    """What one service's panel on the wall shows, in words."""
    measured = [_room_dora(name, tile.dora.get(name, {})) for name in METRICS]
    return {
        "tile": tile,
        "environments": [
            {"env": env, "health": env.health.replace(" ", "-"), "sha": env.sha[:8]}
            for env in tile.environments
        ],
        "columns": [_wip(column) for column in tile.columns],
        "dora": measured,
        "dora_empty": all(m["value"] == "no data" for m in measured),
        "budget": _budget(tile.error_budget_left, tile.budget_alert),
    }


@login_required
def room(request: HttpRequest) -> HttpResponse:
    """The Obeya room; ``?partial=1`` answers its panels only, ``?format=json`` the tiles."""
    version = services.room_version()  # before the tiles: a later event is never missed
    tiles = services.room()
    if request.GET.get("format") == "json":
        return JsonResponse({"version": version, "services": services.tiles_dict(tiles)})
    context = {
        "panels": [room_panel(tile) for tile in tiles],
        "version": version,
        "updated": SYSTEM_CLOCK.now(),
        "window_days": services.ROOM_WINDOW_DAYS,
    }
    template = "metrics/_room_panels.html" if request.GET.get("partial") else "metrics/room.html"
    return render(request, template, context)


@login_required
async def room_events(request: HttpRequest) -> StreamingHttpResponse:
    """Server-sent events: ``version`` at once and whenever any event is recorded, so the room
    fetches its panels again; a comment every ``KEEP_ALIVE_S`` keeps proxies from closing."""

    async def events() -> AsyncIterator[str]:
        yield "retry: 2000\n\n"
        seen, quiet, alive = None, 0.0, 0.0
        while alive < STREAM_S:
            version = await sync_to_async(services.room_version)()
            if version != seen:
                seen, quiet = version, 0.0
                yield f"event: version\ndata: {json.dumps({'version': version})}\n\n"
            elif quiet >= KEEP_ALIVE_S:
                quiet = 0.0
                yield ": keep-alive\n\n"
            await asyncio.sleep(ROOM_POLL_S)
            quiet += ROOM_POLL_S
            alive += ROOM_POLL_S

    response = StreamingHttpResponse(events(), content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    return response
