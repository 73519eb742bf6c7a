"""The health overview page in the admin (figures from :mod:`oauthconn.flows.health`).

The chart is an SVG drawn here from the hourly counts: no script, nothing fetched.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone

from oauthconn.flows.health import WINDOWS, Health, compute_health
from oauthconn.models import TokenStatus

CHART_HEIGHT = 120
BAR_WIDTH = 4


@dataclass(frozen=True)
class Bar:
    """One hour of the chart: a refreshes bar with the failures stacked on top of it."""

    x: int
    ok_y: float
    ok_height: float
    failed_y: float
    failed_height: float
    label: str


def busiest_hour(health: Health) -> int:
    pairs = zip(health.refreshes, health.failures, strict=True)
    return max((ok + failed for ok, failed in pairs), default=0)


def chart_bars(health: Health, height: int = CHART_HEIGHT) -> list[Bar]:
    """Scale the hourly counts to the chart's height (the busiest hour fills it)."""
    peak = busiest_hour(health)
    scale = height / peak if peak else 0.0
    bars = []
    for i, (hour, ok, failed) in enumerate(
        zip(health.hours, health.refreshes, health.failures, strict=True)
    ):
        ok_h, failed_h = ok * scale, failed * scale
        local = timezone.localtime(hour)
        bars.append(
            Bar(
                x=i * BAR_WIDTH,
                ok_y=round(height - ok_h, 2),
                ok_height=round(ok_h, 2),
                failed_y=round(height - ok_h - failed_h, 2),
                failed_height=round(failed_h, 2),
                label=f"{local:%Y-%m-%d %H:00}: {ok} refreshed, {failed} failed",
            )
        )
    return bars


def health_context(health: Health) -> dict:
    statuses = [(label, health.by_status.get(value, 0)) for value, label in TokenStatus.choices]
    windows = [(name, health.expiring[name]) for name in WINDOWS]
    return {
        "health": health,
        "statuses": statuses,
        "windows": windows,
        "bars": chart_bars(health),
        "chart_width": len(health.hours) * BAR_WIDTH,
        "chart_height": CHART_HEIGHT,
        "peak": busiest_hour(health),
        "refreshes_total": sum(health.refreshes),
        "failures_total": sum(health.failures),
    }


def health_view(model_admin: admin.ModelAdmin, request: HttpRequest) -> HttpResponse:
    """Staff with view permission on connections (``admin_view`` already requires staff)."""
    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.opts,
        "title": "OAuth health overview",
        **health_context(compute_health()),
    }
    return TemplateResponse(request, "admin/oauthconn/health.html", context)
