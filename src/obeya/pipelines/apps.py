from typing import Any

from django.apps import AppConfig


class PipelinesConfig(AppConfig):
    name = "obeya.pipelines"
    label = "pipelines"
    verbose_name = "Pipelines"

    def ready(self) -> None:
        from obeya.core import sealed
        from obeya.web import context
        from obeya.web.templatetags import obeya_tags

        # Encrypted under the key file; `obeya secrets rotate-key` re-encrypts them.
        sealed.register("pipelines.Secret", "value")
        sealed.register("pipelines.Pipeline", "webhook_secret")

        context.NAVIGATION.insert(1, context.NavItem("Runners", "/runners/", "/runners"))
        context.SERVICE_TABS.append(context.ServiceTab("Runs", "runs/"))
        context.SERVICE_CONTEXT.append(_andon_context)
        for kind, text in _EVENT_TEXT.items():
            obeya_tags.register_describer(kind, text)


def _andon_context(slug: str) -> dict[str, Any]:
    """The service's andon, for the banner of every service page (one plain statement)."""
    from obeya.catalog.models import Service
    from obeya.core import rows
    from obeya.pipelines.models import Andon

    found = rows.select(
        Andon,
        f"JOIN {rows.quote(Service._meta.db_table)} s ON s.id = t.service_id WHERE s.slug = %s",
        [slug],
    )
    return {"andon": found[0] if found else None}


_EVENT_TEXT: dict[str, Any] = {
    "run.created": lambda d: (
        f"started run #{d.get('number')} of {d.get('branch') or 'a commit'}"
        f" at {str(d.get('sha', ''))[:10]} ({d.get('trigger')})"
    ),
    "run.finished": lambda d: (
        f"finished run #{d.get('number')}: {d.get('status')} in {d.get('duration_s')} s"
    ),
    "run.cancel_requested": lambda d: f"canceled run #{d.get('number')}",
    "job.started": lambda d: (
        f"started job {d.get('name')} of run #{d.get('run')}"
        f" (attempt {d.get('attempt')}, runner {d.get('runner')})"
    ),
    "job.finished": lambda d: (
        f"finished job {d.get('name')} of run #{d.get('run')}:"
        f" {d.get('status')}" + (f" — {d['reason']}" if d.get("reason") else "")
    ),
    "job.returned": lambda d: (
        f"gave job {d.get('name')} of run #{d.get('run')} back to the queue: {d.get('reason')}"
    ),
    "job.retried": lambda d: f"retried job {d.get('name')}",
    "job.played": lambda d: f"started the manual job {d.get('name')}",
    "andon.pulled": lambda d: f"pulled the andon cord: {d.get('reason')}",
    "andon.released": lambda d: f"released the andon cord: {d.get('reason')}",
    "secret.set": lambda d: (
        f"set the {'protected ' if d.get('protected') else ''}secret {d.get('name')}"
        + (f" for {d['environment']}" if d.get("environment") else "")
    ),
    "secret.deleted": lambda d: (
        f"deleted the secret {d.get('name')}"
        + (f" of {d['environment']}" if d.get("environment") else "")
    ),
    "secrets.key_rotated": lambda d: (
        f"rotated the secrets key ({d.get('reencrypted')} secret(s) encrypted again)"
    ),
    "runner.registered": lambda d: f"registered the runner {d.get('name')}",
    "pipeline.configured": lambda d: "changed the pipeline settings",
}
