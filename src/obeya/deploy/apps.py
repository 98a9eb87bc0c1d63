from typing import Any

from django.apps import AppConfig


class DeployConfig(AppConfig):
    name = "obeya.deploy"
    label = "deploy"
    verbose_name = "Deployments"

    def ready(self) -> None:
        from obeya.deploy import services
        from obeya.pipelines import services as pipelines
        from obeya.web import context
        from obeya.web.templatetags import obeya_tags

        # Deploy jobs of obeya.yml become deployments here (pipelines knows no deploy app).
        if services.dispatch_job not in pipelines.DEPLOY_DISPATCHERS:
            pipelines.DEPLOY_DISPATCHERS.append(services.dispatch_job)
        if services.on_job_canceled not in pipelines.DEPLOY_CANCELED:
            pipelines.DEPLOY_CANCELED.append(services.on_job_canceled)
        # Secrets scoped to a protected environment reach only runs of protected refs.
        if _protected_environments not in pipelines.PROTECTED_ENVIRONMENTS:
            pipelines.PROTECTED_ENVIRONMENTS.append(_protected_environments)

        suffixes = [tab.suffix for tab in context.SERVICE_TABS]
        if "environments/" not in suffixes:
            # Right after the runs whose builds it deploys.
            position = suffixes.index("runs/") + 1 if "runs/" in suffixes else len(suffixes)
            context.SERVICE_TABS.insert(
                position, context.ServiceTab("Environments", "environments/")
            )
        for kind, text in _EVENT_TEXT.items():
            obeya_tags.register_describer(kind, text)


def _protected_environments(service_id: int) -> set[str]:
    from obeya.deploy.models import Environment

    return set(
        Environment.objects.filter(service_id=service_id, protected=True).values_list(
            "name", flat=True
        )
    )


def _deployment(d: dict[str, Any]) -> str:
    what = "rollback" if d.get("kind") == "rollback" else "deployment"
    return f"{what} #{d.get('deployment')} to {d.get('environment')}"


def _because(d: dict[str, Any]) -> str:
    return f": {d['reason']}" if d.get("reason") else ""


_EVENT_TEXT: dict[str, Any] = {
    "environment.created": lambda d: f"defined the environment {d.get('name')} ({d.get('tier')})",
    "environment.changed": lambda d: (
        f"changed the environment {d.get('name')}: "
        + (", ".join(sorted(d.get("changes") or {})) or "nothing")
    ),
    "environment.protection_changed": lambda d: (
        f"changed the protection of {d.get('name')}: "
        + ", ".join(
            f"{key} {(d.get('before') or {}).get(key)} → {(d.get('after') or {}).get(key)}"
            for key in d.get("changed") or []
        )
    ),
    "deployment.requested": lambda d: (
        f"asked for {_deployment(d)}"
        + (f" of run #{d['run']}" if d.get("run") else "")
        + (f" at {str(d['sha'])[:10]}" if d.get("sha") else "")
    ),
    "deployment.approved": lambda d: f"approved {_deployment(d)}: “{d.get('comment')}”",
    "deployment.rejected": lambda d: f"rejected {_deployment(d)}: “{d.get('comment')}”",
    "deployment.queued": lambda d: f"queued {_deployment(d)}",
    "deployment.started": lambda d: f"started {_deployment(d)}",
    "deployment.switched": lambda d: (
        f"switched {d.get('environment')} to release {d.get('release')}"
    ),
    "deployment.succeeded": lambda d: (
        f"finished {_deployment(d)}: {d.get('version') or 'release ' + str(d.get('release'))} "
        "is live"
    ),
    "deployment.failed": lambda d: f"{_deployment(d)} failed{_because(d)}",
    "deployment.rolled_back": lambda d: f"{_deployment(d)} was rolled back{_because(d)}",
    "deployment.outdated": lambda d: f"{_deployment(d)} is outdated{_because(d)}",
    "deployment.canceled": lambda d: f"canceled {_deployment(d)}{_because(d)}",
    "deployment.closed": lambda d: f"closed {_deployment(d)}{_because(d)}",
}
