from django.apps import AppConfig


class OpsConfig(AppConfig):
    name = "obeya.ops"
    label = "ops"
    verbose_name = "Operations"
