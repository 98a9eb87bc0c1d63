from typing import Any

from django.apps import AppConfig


class OpsConfig(AppConfig):
    name = "obeya.ops"
    label = "ops"
    verbose_name = "Operations"

    def ready(self) -> None:
        from obeya.core import sealed
        from obeya.ops import continuity_views, notify_views, views

        sealed.register("ops.Channel", "secret")  # encrypted under the key file
        sealed.register("ops.Channel", "url")
        from obeya.web import context
        from obeya.web.templatetags import obeya_tags

        suffixes = [tab.suffix for tab in context.SERVICE_TABS]
        if "operations/" not in suffixes:
            # Right after the environments it watches.
            position = (
                suffixes.index("environments/") + 1
                if "environments/" in suffixes
                else len(suffixes)
            )
            context.SERVICE_TABS.insert(position, context.ServiceTab("Operations", "operations/"))
        for kind, text in _EVENT_TEXT.items():
            obeya_tags.register_describer(kind, text)
        if continuity_views.panel not in views.PANELS:
            views.PANELS.append(continuity_views.panel)
        if notify_views.panel not in views.PANELS:
            views.PANELS.append(notify_views.panel)


def _incident(d: dict[str, Any]) -> str:
    return f"INC-{d.get('number')}"


def _note(d: dict[str, Any]) -> str:
    return f": “{d['note']}”" if d.get("note") else ""


_EVENT_TEXT: dict[str, Any] = {
    "monitor.created": lambda d: f"set up the monitor {d.get('name')} ({d.get('kind')})",
    "monitor.changed": lambda d: (
        f"changed the monitor {d.get('name')}: "
        + (", ".join(sorted(d.get("changes") or {})) or "nothing")
    ),
    "monitor.deleted": lambda d: f"deleted the monitor {d.get('name')}",
    "monitor.failing": lambda d: (
        f"monitor {d.get('name')} failed {d.get('failures')} times in a row "
        f"and opened INC-{d.get('incident')}: {d.get('detail')}"
    ),
    "monitor.recovered": lambda d: f"monitor {d.get('name')} passes again",
    "incident.opened": lambda d: (
        f"opened {_incident(d)} ({d.get('severity')}, from {d.get('source')}): {d.get('title')}"
    ),
    "incident.acknowledged": lambda d: f"acknowledged {_incident(d)}{_note(d)}",
    "incident.mitigated": lambda d: f"mitigated {_incident(d)}{_note(d)}",
    "incident.resolved": lambda d: f"resolved {_incident(d)}{_note(d)}",
    "incident.noted": lambda d: f"added a note to {_incident(d)}",
    "incident.caused_by": lambda d: (
        f"linked {_incident(d)} to deployment #{d.get('deployment')} ({d.get('environment')})"
        + (" automatically" if d.get("automatic") else "")
    ),
    "incident.cause_removed": lambda d: (
        f"unlinked {_incident(d)} from deployment #{d.get('deployment')}"
    ),
    "incident.monitor_recovered": lambda d: (
        f"monitor {d.get('monitor')} recovered while {_incident(d)} is open"
    ),
    "slo.created": lambda d: (
        f"set the SLO {d.get('name')}: {d.get('objective_percent')} % {d.get('kind')} "
        f"over {d.get('window_days')} days"
    ),
    "slo.deleted": lambda d: f"removed the SLO {d.get('name')}",
    "postmortem.written": lambda d: (
        f"wrote the postmortem of {_incident(d)} ({len(d.get('actions') or [])} follow-up(s))"
    ),
    "postmortem.updated": lambda d: f"changed the postmortem of {_incident(d)}",
    "problem.opened": lambda d: f"opened PRB-{d.get('number')}: {d.get('title')}",
    "problem.changed": lambda d: f"changed PRB-{d.get('number')}",
}
