from django.apps import AppConfig


class DatazenConfig(AppConfig):
    name = "datazen"
    verbose_name = "Enzo DataZen HTTP API 2.0"
