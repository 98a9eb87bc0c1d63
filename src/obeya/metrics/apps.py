from django.apps import AppConfig


class MetricsConfig(AppConfig):
    name = "obeya.metrics"
    label = "metrics"
    verbose_name = "Metrics and the Obeya room"

    def ready(self) -> None:
        from obeya.web import context

        suffixes = [tab.suffix for tab in context.SERVICE_TABS]
        if "metrics/" not in suffixes:
            # Right after the operations whose incidents and deployments it measures.
            position = (
                suffixes.index("operations/") + 1 if "operations/" in suffixes else len(suffixes)
            )
            context.SERVICE_TABS.insert(position, context.ServiceTab("Metrics", "metrics/"))
        if not any(item.url == "/room/" for item in context.NAVIGATION):
            # First: the room is where a team looks before anything else.
            context.NAVIGATION.insert(0, context.NavItem("Room", "/room/", "/room"))
