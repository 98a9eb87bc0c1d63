from django.apps import AppConfig


class CatalogConfig(AppConfig):
    name = "obeya.catalog"
    label = "catalog"
    verbose_name = "Service catalog"
