"""The admin API's OpenAPI document and its aiohttp router come from one table: check that
they agree in both directions, that every reference resolves, and that schemathesis can
generate requests for every operation from the document."""

from __future__ import annotations

import re
from types import SimpleNamespace
from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings

from broker.admin.http import AdminHttpServer
from broker.admin.http_ui import UI_PREFIX
from broker.admin.openapi import ROUTES, SCHEMAS, openapi_document


def _server() -> AdminHttpServer:
    # Building the app reads only the node id; no handler runs here.
    keys = {"admin.authentication.methods": [], "admin.bearer.tokens.file": None}
    node = SimpleNamespace(config=SimpleNamespace(node_id=1, get=keys.__getitem__), admin=None,
                           cluster_id="c")
    return AdminHttpServer(node)


def _router_routes(server: AdminHttpServer) -> set[tuple[str, str]]:
    out = set()
    for route in server.app.router.routes():
        if route.method == "HEAD":  # aiohttp adds HEAD for every GET
            continue
        info = route.resource.get_info() if route.resource is not None else {}
        path = info.get("formatter") or info.get("path")
        if path.startswith(UI_PREFIX):  # the web console's static files, not API operations
            continue
        out.add((route.method, path))
    return out


def test_router_and_document_list_the_same_routes() -> None:
    doc = openapi_document()
    documented = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    assert _router_routes(_server()) == documented
    assert len(documented) == len(ROUTES)  # no duplicate (method, path) in the table


def test_every_operation_has_its_handler() -> None:
    server = _server()
    ids = [r.operation_id for r in ROUTES]
    assert len(set(ids)) == len(ids)
    for r in ROUTES:
        handler = getattr(server, r.operation_id)
        assert callable(handler), r.operation_id
        named = server.app.router[r.operation_id]
        assert named.get_info().get("formatter", named.get_info().get("path")) == r.path


def _refs(obj: Any) -> list[str]:
    found: list[str] = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k == "$ref":
                found.append(v)
            else:
                found += _refs(v)
    elif isinstance(obj, list):
        for v in obj:
            found += _refs(v)
    return found


def test_references_resolve_and_path_parameters_are_declared() -> None:
    doc = openapi_document("http://127.0.0.1:9644")
    assert doc["openapi"].startswith("3.0") and doc["servers"][0]["url"].startswith("http")
    for ref in _refs(doc):
        name = ref.removeprefix("#/components/schemas/")
        assert ref.startswith("#/components/schemas/") and name in SCHEMAS, ref
    for path, ops in doc["paths"].items():
        names = set(re.findall(r"{(\w+)}", path))
        for method, op in ops.items():
            declared = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
            assert declared == names, (method, path)
            assert op["responses"], (method, path)
            for status, resp in op["responses"].items():
                assert re.fullmatch(r"[1-5]\d\d", status) and resp["description"]
            errors = [s for s in op["responses"] if s >= "400"]
            for status in errors:
                schema = op["responses"][status]["content"]["application/json"]["schema"]
                if status != "503" or path != "/v1/status/ready":
                    assert schema == {"$ref": "#/components/schemas/Error"}, (path, status)


def test_object_schemas_are_closed_and_list_their_required_fields() -> None:
    for name, schema in SCHEMAS.items():
        if name == "OpenApiDocument":
            continue
        assert schema["type"] == "object", name
        assert schema.get("additionalProperties") is False, name
        for field in schema.get("required", []):
            assert field in schema["properties"], (name, field)


def _generate(op: Any) -> None:
    @settings(max_examples=3, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(case=op.as_strategy())
    def generate(case: Any) -> None:
        assert case.operation is op
        assert case.path == op.path
    generate()


def test_schemathesis_generates_every_operation() -> None:
    schema = schemathesis.openapi.from_dict(openapi_document("http://127.0.0.1:9644"))
    seen = set()
    for result in schema.get_all_operations():
        op = result.ok()
        seen.add((op.method.upper(), op.path))
        _generate(op)
    assert seen == {(r.method, r.path) for r in ROUTES}
