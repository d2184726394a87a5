from django.apps import AppConfig


class DatafluxConfig(AppConfig):
    name = "dataflux"
    verbose_name = "SAS DataFlux Real-Time Data Job REST API"
