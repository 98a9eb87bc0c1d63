from django.apps import AppConfig


class BacklogConfig(AppConfig):
    name = "obeya.backlog"
    label = "backlog"
    verbose_name = "Backlog"

    def ready(self) -> None:
        from obeya.backlog import services, sync, views
        from obeya.catalog import services as catalog
        from obeya.pipelines import services as pipelines
        from obeya.web import context
        from obeya.web.templatetags import obeya_tags

        catalog.register_retirement_check(services.end_of_life_ready)
        for listeners, listener in (
            (pipelines.RUN_CREATED, sync.on_run_created),
            (pipelines.RUN_FINISHED, sync.on_run_finished),
        ):
            if listener not in listeners:
                listeners.append(listener)
        # Planning comes before building: the tab sits right after the service's Overview.
        if not any(tab.suffix == "backlog/" for tab in context.SERVICE_TABS):
            context.SERVICE_TABS.insert(1, context.ServiceTab("Backlog", "backlog/"))
        for kind, text in views.EVENT_TEXT.items():
            obeya_tags.register_describer(kind, text)
