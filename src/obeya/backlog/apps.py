from django.apps import AppConfig


class BacklogConfig(AppConfig):
    name = "obeya.backlog"
    label = "backlog"
    verbose_name = "Backlog"

    def ready(self) -> None:
        from obeya.backlog import services
        from obeya.catalog import services as catalog

        catalog.register_retirement_check(services.end_of_life_ready)
