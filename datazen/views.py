"""DataZen endpoints: parse the query, call one service in jobs/, render the vendor's JSON."""

from typing import Any

from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from datazen import render
from datazen.auth import KeyScopePermission, SharedKeyAuthentication
from datazen.errors import datazen_exception_handler


class DataZenView(APIView):
    """Base view: SharedKey auth, scope check, JSON in and out, DataZen error bodies."""

    api = "jobs"
    authentication_classes = [SharedKeyAuthentication]
    permission_classes = [KeyScopePermission]

    def get_exception_handler(self) -> Any:
        return datazen_exception_handler


class VersionView(DataZenView):
    api = "agent"

    def get(self, request: Request) -> Response:
        return Response({"Version": render.version(request)})
