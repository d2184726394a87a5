"""DataFlux Real-Time Data Job REST API, mounted at /SASDataMgmtRTDataJob/rest."""

app_name = "dataflux"

urlpatterns: list = []
