"""``/metrics``: Obeya's figures in the Prometheus text format, read at scrape time.

Per service: the five DORA metrics over the room's 30-day window, the andon cord, WIP per
board column with its limit, and open incidents, all from the room's tiles
(``services.room``, cached per service while its newest event is unchanged, at most a
minute). Across Obeya: the job queue, the runners by state, and deployments that ended, by
service, environment and outcome. A scrape authenticates like the API: an API token
(read scope is enough) or a signed-in session.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_safe
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from obeya.core import services as core
from obeya.core.errors import Unauthenticated
from obeya.deploy.models import Deployment
from obeya.metrics import services
from obeya.pipelines import runners
from obeya.pipelines.models import Job, JobStatus, Runner

# The room's DORA tiles, each as a gauge (the tiles' units already are Prometheus's).
DORA_GAUGES = (
    (
        "deployment_frequency",
        "obeya_deployment_frequency_per_day",
        "Successful production deployments per day over the last 30 days.",
    ),
    (
        "change_lead_time",
        "obeya_change_lead_time_seconds",
        "Median time from commit to running in production over the last 30 days.",
    ),
    (
        "change_fail_rate",
        "obeya_change_fail_rate",
        "Share of production deployments over the "
        "last 30 days that failed (rolled back or caused an incident).",
    ),
    (
        "recovery_time",
        "obeya_recovery_time_seconds",
        "Median time from a failed deployment "
        "being detected to the service being restored, over the last 30 days.",
    ),
    (
        "rework_rate",
        "obeya_rework_rate",
        "Share of production deployments over the last 30 "
        "days made while an incident caused by a deployment was open.",
    ),
)
# A deployment in one of these has ended: the counts only grow.
ENDED = ("succeeded", "failed", "rolled_back", "outdated", "canceled", "rejected")
RUNNER_STATES = ("online", "paused", "offline")
NOT_SIGNED_IN = (
    "/metrics needs Authorization: Bearer <token> (a read-scope token will do: "
    "obeya token create --scope read) or a signed-in session"
)


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return None if math.isnan(value) else float(value)


class ObeyaCollector:
    """Reads the database each time Prometheus scrapes; keeps nothing between scrapes."""

    def collect(self) -> Iterator[Metric]:
        yield from self._services()
        yield self._queue()
        yield self._runners()
        yield self._deployments()

    def _services(self) -> Iterator[Metric]:
        dora = {
            key: GaugeMetricFamily(name, text, labels=["service"])
            for key, name, text in DORA_GAUGES
        }
        andon = GaugeMetricFamily(
            "obeya_andon_pulled", "1 while the service's andon cord is pulled.", labels=["service"]
        )
        wip = GaugeMetricFamily(
            "obeya_wip", "Cards in a board column now.", labels=["service", "column"]
        )
        limit = GaugeMetricFamily(
            "obeya_wip_limit",
            "A board column's WIP limit (columns with one).",
            labels=["service", "column"],
        )
        incidents = GaugeMetricFamily(
            "obeya_open_incidents", "Incidents not resolved yet.", labels=["service"]
        )
        for tile in services.room():
            for key, family in dora.items():
                value = _number(tile.dora.get(key, {}).get("value"))
                if value is not None:
                    family.add_metric([tile.slug], value)
            andon.add_metric([tile.slug], 1.0 if tile.andon_pulled else 0.0)
            for column in tile.columns:
                wip.add_metric([tile.slug, column.name], float(column.cards))
                if column.limit is not None:
                    limit.add_metric([tile.slug, column.name], float(column.limit))
            incidents.add_metric([tile.slug], float(len(tile.incidents)))
        yield from dora.values()
        yield from (andon, wip, limit, incidents)

    def _queue(self) -> Metric:
        depth = Job.objects.filter(status=JobStatus.QUEUED).count()
        return GaugeMetricFamily(
            "obeya_job_queue_depth", "Jobs queued, waiting for a runner.", value=depth
        )

    def _runners(self) -> Metric:
        counts = dict.fromkeys(RUNNER_STATES, 0)
        for runner in Runner.objects.all():
            online = runners.is_online(runner)
            counts["paused" if runner.paused else "online" if online else "offline"] += 1
        family = GaugeMetricFamily(
            "obeya_runners",
            "Registered runners: online (seen within two leases), paused, or offline.",
            labels=["state"],
        )
        for state, count in counts.items():
            family.add_metric([state], float(count))
        return family

    def _deployments(self) -> Metric:
        rows = (
            Deployment.objects.filter(status__in=ENDED)
            .values_list("service__slug", "environment__name", "status")
            .annotate(n=Count("id"))
            .order_by("service__slug", "environment__name", "status")
        )
        family = CounterMetricFamily(
            "obeya_deployments",
            "Deployments that ended, by service, environment and outcome.",
            labels=["service", "environment", "status"],
        )
        for slug, environment, status, count in rows:
            family.add_metric([slug, environment, status], float(count))
        return family


def exposition() -> bytes:
    """The current figures in the Prometheus text format."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ObeyaCollector())
    return generate_latest(registry)


def _refusal(request: HttpRequest) -> str | None:
    """Why this request may not scrape, or None when it may."""
    header = request.headers.get("Authorization", "")
    scheme, _, secret = header.partition(" ")
    if scheme.lower() == "bearer" and secret.strip():
        try:
            core.authenticate_token(secret.strip())
        except Unauthenticated as error:
            return error.message
        return None
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        return None
    return NOT_SIGNED_IN


@require_safe
def scrape(request: HttpRequest) -> HttpResponse:
    """The Prometheus scrape target."""
    refused = _refusal(request)
    if refused is not None:
        return HttpResponse(
            refused + "\n",
            status=401,
            content_type="text/plain; charset=utf-8",
            headers={"WWW-Authenticate": 'Bearer realm="obeya"'},
        )
    return HttpResponse(exposition(), content_type=CONTENT_TYPE_LATEST)
