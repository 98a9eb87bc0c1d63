from django.apps import AppConfig


class MetricsConfig(AppConfig):
    name = "obeya.metrics"
    label = "metrics"
    verbose_name = "Metrics and the Obeya room"
