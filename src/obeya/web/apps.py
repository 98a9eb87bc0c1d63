from django.apps import AppConfig


class WebConfig(AppConfig):
    name = "obeya.web"
    label = "web"
    verbose_name = "Web UI"
