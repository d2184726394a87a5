"""Paths no DataZen endpoint answers get DataZen's JSON error; the console and DataFlux keep
their own answers."""

import pytest
from django.test import Client


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/nosuch", "/job/nosuch", "/jobs/", "/version/extra"])
def test_an_unknown_datazen_path_answers_the_vendor_json_error(path):
    response = Client().post(path)
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json() == {
        "Error": f"No DataZen endpoint answers POST {path}.",
        "StatusCode": 404,
    }


@pytest.mark.django_db
def test_the_console_and_dataflux_keep_their_own_unknown_path_answers():
    client = Client()
    assert client.get("/admin/nosuch")["Location"] == "/admin/login/?next=/admin/nosuch"
    dataflux = client.get("/SASDataMgmtRTDataJob/rest/nosuch")
    assert dataflux["Content-Type"] == "application/vnd.sas.error+json"
