"""A local SOAP service that answers like form.com's v81 API, for the vendor's exports.

Only the operations the exports call: getForms, listModels, getModelObjectsByFilter,
getMyAccount, addModelObject/editModelObject. Data lives in plain lists the tests change
between runs. Served by wsgiref on a free loopback port, in a thread.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server
from xml.sax.saxutils import escape

from lxml import etree

from tests.processes import free_port

ENVELOPE = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/">'
    "<soap:Body>{body}</soap:Body></soap:Envelope>"
)


def leaves(values: dict[str, Any]) -> str:
    return "".join(f"<{k}>{escape(str(v))}</{k}>" for k, v in values.items() if v is not None)


@dataclass
class FormService:
    forms: list[dict[str, Any]] = field(default_factory=list)
    # A model: its leaves, and its columns (each with a columnType).
    models: list[dict[str, Any]] = field(default_factory=list)
    # modelId → objects: {"id", "keyFieldName", "properties": {key: value}}
    objects: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    account: dict[str, Any] = field(default_factory=dict)
    calls: list[tuple[str, str]] = field(default_factory=list)
    received: list[str] = field(default_factory=list)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length).decode("utf-8")
        self.received.append(body)
        try:
            document = etree.fromstring(body.encode())
            operation = next(
                element
                for element in document.iter()
                if isinstance(element.tag, str) and etree.QName(element).localname == "Body"
            )[0]
        except (etree.XMLSyntaxError, StopIteration, IndexError):
            start_response("400 Bad Request", [("Content-Type", "text/plain")])
            return iter([b"not a SOAP envelope"])
        name = etree.QName(operation).localname
        namespace = etree.QName(operation).namespace or ""
        arguments = {etree.QName(c).localname: (c.text or "") for c in operation}
        self.calls.append((environ["PATH_INFO"], name))
        answer = getattr(self, f"op_{name}", None)
        if answer is None:
            start_response("500 Internal Server Error", [("Content-Type", "text/xml")])
            return iter([ENVELOPE.format(body=f"<soap:Fault>no {name}</soap:Fault>").encode()])
        inner = answer(arguments, operation)
        payload = ENVELOPE.format(
            body=f'<ns2:{name}Response xmlns:ns2="{namespace}">{inner}</ns2:{name}Response>'
        )
        start_response("200 OK", [("Content-Type", "text/xml;charset=UTF-8")])
        return iter([payload.encode()])

    def op_getForms(self, arguments: dict[str, str], element: Any) -> str:
        return "".join(f"<return>{leaves(form)}</return>" for form in self.forms)

    def op_listModels(self, arguments: dict[str, str], element: Any) -> str:
        out = []
        for model in self.models:
            columns = "".join(
                "<columns>"
                + leaves({k: v for k, v in column.items() if k != "columnType"})
                + f"<columnType>{leaves(column['columnType'])}</columnType></columns>"
                for column in model["columns"]
            )
            own = {k: v for k, v in model.items() if k != "columns"}
            out.append(f"<return>{leaves(own)}{columns}</return>")
        return "".join(out)

    def op_getModelObjectsByFilter(self, arguments: dict[str, str], element: Any) -> str:
        out = []
        for item in self.objects.get(arguments.get("modelId", ""), []):
            entries = "".join(
                f"<entry>{leaves({'key': k, 'value': v})}</entry>"
                for k, v in item["properties"].items()
            )
            own = {"id": item["id"], "keyFieldName": item["keyFieldName"]}
            out.append(f"<return>{leaves(own)}<properties>{entries}</properties></return>")
        return "".join(out)

    def op_getMyAccount(self, arguments: dict[str, str], element: Any) -> str:
        return f"<return>{leaves(self.account)}</return>"

    def op_addModelObject(self, arguments: dict[str, str], element: Any) -> str:
        model_id, model = arguments["modelId"], _model(element)
        objects = self.objects.setdefault(model_id, [])
        new_id = str(1 + max((int(o["id"]) for o in self.objects_all()), default=9000))
        objects.append(
            {"id": new_id, "keyFieldName": model["keyFieldName"], "properties": model["properties"]}
        )
        return f"<return>{new_id}</return>"

    def op_editModelObject(self, arguments: dict[str, str], element: Any) -> str:
        model_id, model = arguments["modelId"], _model(element)
        for item in self.objects.get(model_id, []):
            if item["id"] == model["id"]:
                item["properties"] = {**item["properties"], **model["properties"]}
                return f"<return>{item['id']}</return>"
        raise LookupError(f"no object {model['id']} in model {model_id}")

    def objects_all(self) -> list[dict[str, Any]]:
        return [o for objects in self.objects.values() for o in objects]


def _model(operation: Any) -> dict[str, Any]:
    """`<model>`'s `id`, `keyFieldName` and `properties/entry` key/value pairs."""
    (model,) = [c for c in operation if etree.QName(c).localname == "model"]
    out: dict[str, Any] = {"properties": {}}
    for child in model:
        name = etree.QName(child).localname
        if name == "properties":
            for entry in child:
                fields = {etree.QName(f).localname: f.text or "" for f in entry}
                out["properties"][fields["key"]] = fields.get("value", "")
        else:
            out[name] = child.text or ""
    return out


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def serving(app: Any) -> Iterator[str]:
    """Serve a WSGI app on a free loopback port; yields its base URL."""
    port = free_port()
    server: WSGIServer = make_server("127.0.0.1", port, app, handler_class=_Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def operation_names(service: FormService) -> list[str]:
    return [name for _, name in service.calls]
