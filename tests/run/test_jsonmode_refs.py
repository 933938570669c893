"""A JSON schema's ``$ref`` never leaves the schema: local references resolve, remote and
file ones are refused when the option is checked and never fetched when validating."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cc_executor._run._jsonmode import check_schema, extract_json
from cc_executor._run._options import RunOptions


class Counting(http.server.BaseHTTPRequestHandler):
    requests = 0

    def do_GET(self) -> None:
        type(self).requests += 1
        body = b'{"type": "integer"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/schema+json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def schema_url() -> Iterator[str]:
    """A loopback server that would serve a schema, counting the requests it gets."""
    Counting.requests = 0
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Counting)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/schema.json"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def remote_schemas(url: str) -> list[dict[str, Any]]:
    return [
        {"$ref": url},
        {"type": "object", "properties": {"a": {"$ref": url}}},
        {"$defs": {"x": {"prefixItems": [{"$ref": url}]}}, "$ref": "#/$defs/x"},
        {"$id": url, "$ref": "other.json"},
        {"$dynamicRef": url},
        {"$schema": "https://json-schema.org/draft/2019-09/schema", "$recursiveRef": url},
    ]


def test_remote_refs_are_refused_at_check_time_and_never_fetched(schema_url: str) -> None:
    for schema in remote_schemas(schema_url):
        with pytest.raises(ValueError, match="remote and file references are refused"):
            check_schema(schema)
        with pytest.raises(ValueError, match="remote and file references are refused"):
            extract_json('{"a": 1}', schema=schema)
    assert Counting.requests == 0


def test_the_error_says_where_the_ref_is(schema_url: str) -> None:
    with pytest.raises(ValueError, match="refused") as caught:
        check_schema({"type": "object", "properties": {"a": {"$ref": schema_url}}})
    message = str(caught.value)
    assert message.startswith(f"invalid JSON schema: $ref '{schema_url}' at $.properties.a ")
    assert "\n" not in message


def test_the_run_option_check_refuses_a_remote_ref(schema_url: str) -> None:
    with pytest.raises(ValueError, match="remote and file references are refused"):
        RunOptions(json_schema={"$ref": schema_url})
    assert Counting.requests == 0


def test_a_file_ref_is_refused_and_its_content_never_shown(tmp_path: Path) -> None:
    secret = tmp_path / "outside.json"
    secret.write_text('{"const": "hunter2-secret"}')
    for ref in (secret.as_uri(), f"{secret.as_uri()}#/const", str(secret)):
        with pytest.raises(ValueError, match="remote and file references are refused") as caught:
            extract_json('{"a": 1}', schema={"properties": {"a": {"$ref": ref}}})
        assert "hunter2" not in str(caught.value)


def test_a_relative_ref_under_a_remote_id_is_never_fetched(schema_url: str) -> None:
    # "#..." is the only form accepted, and it always means this same document.
    schema = {"$id": schema_url, "$ref": "#/$defs/n", "$defs": {"n": {"type": "integer"}}}
    assert extract_json("5").error is None
    assert extract_json("5", schema=schema).error is None
    assert extract_json('"x"', schema=schema).schema_errors == ["$: 'x' is not of type 'integer'"]
    missing = {"$id": schema_url, "$ref": "#/$defs/none"}
    with pytest.raises(ValueError, match="cannot resolve \\$ref"):
        extract_json("5", schema=missing)
    assert Counting.requests == 0


@pytest.mark.parametrize("where", ["$defs", "definitions"])
def test_local_refs_resolve(where: str) -> None:
    schema = {
        where: {"item": {"type": "object", "required": ["id"]}},
        "type": "array",
        "items": {"$ref": f"#/{where}/item"},
    }
    check_schema(schema)
    assert extract_json('[{"id": 1}]', schema=schema).error is None
    errors = extract_json('[{"id": 1}, {}]', schema=schema).schema_errors
    assert errors == ["$[1]: 'id' is a required property"]


def test_a_recursive_local_ref_resolves() -> None:
    tree = {
        "type": "object",
        "properties": {"children": {"type": "array", "items": {"$ref": "#"}}},
        "additionalProperties": False,
    }
    assert extract_json('{"children": [{"children": []}]}', schema=tree).error is None
    assert extract_json('{"children": [{"x": 1}]}', schema=tree).schema_errors
