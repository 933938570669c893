"""ModelServer over real HTTP (httpx): the wire format, the choice of answers, the lifecycle."""

from __future__ import annotations

import itertools
import json
import threading
import time
from typing import Any

import httpx
import pytest

from cc_executor.testing import (
    HttpErrorReply,
    ModelServer,
    Reply,
    Rule,
    Script,
    Thinking,
    ToolUse,
    Usage,
)
from tests._wait import wait_for

# Each test starts the scripted model server: not for the fast tier (no servers).
pytestmark = pytest.mark.slow


def one_rule(*answers: Reply | HttpErrorReply, **options: Any) -> Script:
    return Script([Rule(list(answers))], **options)


def body(prompt: str = "hi", *, stream: bool = True, turns: int = 0) -> dict[str, Any]:
    """A Messages API request body at the given turn (that many assistant messages)."""
    messages: list[dict[str, Any]] = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "<system-reminder>\nignored\n</system-reminder>\n"},
                {"type": "text", "text": prompt},
            ],
        }
    ]
    for turn in range(turns):
        messages.append({"role": "assistant", "content": [{"type": "text", "text": f"a{turn}"}]})
        messages.append({"role": "user", "content": f"u{turn}"})
    return {"model": "claude-test-model", "max_tokens": 100, "stream": stream, "messages": messages}


def sse_events(response: httpx.Response) -> list[tuple[str, dict[str, Any]]]:
    events: list[tuple[str, dict[str, Any]]] = []
    for frame in response.text.split("\n\n"):
        if not frame.strip():
            continue
        name_line, data_line = frame.split("\n")
        assert name_line.startswith("event: ")
        assert data_line.startswith("data: ")
        data = json.loads(data_line.removeprefix("data: "))
        assert data["type"] == name_line.removeprefix("event: ")
        events.append((data["type"], data))
    return events


def post(server: ModelServer, payload: dict[str, Any], **kwargs: Any) -> httpx.Response:
    return httpx.post(f"{server.url}/v1/messages?beta=true", json=payload, **kwargs)


def test_streamed_reply_has_the_messages_api_event_sequence() -> None:
    reply = Reply(
        [Thinking("hmm", signature="sig"), "Hello", ToolUse("Bash", {"command": "ls -la"})],
        chunk_size=4,
        usage=Usage(input_tokens=7, output_tokens=9, cache_read_input_tokens=3),
    )
    with ModelServer(one_rule(reply)) as server:
        response = post(server, body())

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert "content-length" not in response.headers
    events = sse_events(response)
    names = [name for name, _ in events]
    assert names == [
        "message_start",
        "ping",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "content_block_start",
        *["content_block_delta"] * 5,
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    start = events[0][1]["message"]
    assert start["model"] == "claude-test-model"
    assert start["usage"]["input_tokens"] == 7
    deltas = [data["delta"] for name, data in events if name == "content_block_delta"]
    assert deltas[0] == {"type": "thinking_delta", "thinking": "hmm"}
    assert deltas[1] == {"type": "signature_delta", "signature": "sig"}
    assert [d["text"] for d in deltas if d["type"] == "text_delta"] == ["Hell", "o"]
    tool_json = "".join(d["partial_json"] for d in deltas if d["type"] == "input_json_delta")
    assert json.loads(tool_json) == {"command": "ls -la"}
    tool_start = events[10][1]["content_block"]
    assert tool_start["type"] == "tool_use"
    assert tool_start["name"] == "Bash"
    assert tool_start["id"].startswith("toolu_")
    final = events[-2][1]
    assert final["delta"]["stop_reason"] == "tool_use"
    assert final["usage"] == {
        "input_tokens": 7,
        "output_tokens": 9,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 3,
    }


def test_non_streaming_request_gets_the_whole_message() -> None:
    reply = Reply(["Hi!", ToolUse("Write", {"file_path": "a", "content": "b"}, id="toolu_x")])
    with ModelServer(one_rule(reply)) as server:
        response = post(server, body(stream=False))

    assert response.status_code == 200
    message = response.json()
    assert message["type"] == "message"
    assert message["role"] == "assistant"
    assert message["content"] == [
        {"type": "text", "text": "Hi!"},
        {
            "type": "tool_use",
            "id": "toolu_x",
            "name": "Write",
            "input": {"file_path": "a", "content": "b"},
        },
    ]
    assert message["stop_reason"] == "tool_use"
    assert message["usage"]["output_tokens"] >= 1


def test_ids_are_deterministic_per_prompt_and_turn() -> None:
    reply = Reply([ToolUse("Bash", {"command": "true"})])
    with ModelServer(one_rule(reply, when_exhausted="repeat_last")) as server:
        first = post(server, body("same", stream=False)).json()
        again = post(server, body("same", stream=False)).json()
        other = post(server, body("other", stream=False)).json()
        later = post(server, body("same", stream=False, turns=1)).json()

    assert first["id"] == again["id"]
    assert first["content"][0]["id"] == again["content"][0]["id"]
    assert other["id"] != first["id"]
    assert later["id"] != first["id"]


@pytest.mark.parametrize(
    ("status", "error_type", "retry_after"),
    [
        (400, "invalid_request_error", None),
        (429, "rate_limit_error", "1"),
        (500, "api_error", None),
        (529, "overloaded_error", None),
        (418, "invalid_request_error", None),  # an unlisted 4xx
        (502, "api_error", None),  # an unlisted 5xx
    ],
)
def test_http_errors_have_anthropic_bodies_and_headers(
    status: int, error_type: str, retry_after: str | None
) -> None:
    with ModelServer(one_rule(HttpErrorReply(status))) as server:
        response = post(server, body())

    assert response.status_code == status
    assert response.json() == {
        "type": "error",
        "error": {"type": error_type, "message": f"Scripted {status} error ({error_type})"},
    }
    assert response.headers.get("retry-after") == retry_after
    assert response.headers["request-id"].startswith("req_")


def test_http_error_options() -> None:
    error = HttpErrorReply(
        429,
        message="slow down",
        error_type="custom_error",
        retry_after=2.5,
        headers={"anthropic-ratelimit-unified-status": "rejected"},
    )
    with ModelServer(one_rule(error)) as server:
        response = post(server, body())

    assert response.json()["error"] == {"type": "custom_error", "message": "slow down"}
    assert response.headers["retry-after"] == "2.5"
    assert response.headers["anthropic-ratelimit-unified-status"] == "rejected"


def test_answers_follow_the_turn_of_the_conversation() -> None:
    script = one_rule(Reply(["first"]), Reply(["second"]))
    with ModelServer(script) as server:
        turn0 = post(server, body(stream=False)).json()
        turn0_again = post(server, body(stream=False)).json()
        turn1 = post(server, body(stream=False, turns=1)).json()
        turn2 = post(server, body(stream=False, turns=2))

    assert turn0["content"][0]["text"] == "first"
    assert turn0_again["content"][0]["text"] == "first"
    assert turn1["content"][0]["text"] == "second"
    assert turn2.status_code == 500
    message = turn2.json()["error"]["message"]
    assert "script exhausted" in message
    assert "rule 0 has 2 answer(s)" in message
    assert "turn 2" in message


def test_repeat_last_when_exhausted() -> None:
    script = one_rule(Reply(["first"]), Reply(["last"]), when_exhausted="repeat_last")
    with ModelServer(script) as server:
        texts = [
            post(server, body(stream=False, turns=n)).json()["content"][0]["text"] for n in range(4)
        ]

    assert texts == ["first", "last", "last", "last"]


def test_rules_match_the_prompt_first_match_wins() -> None:
    script = Script(
        [
            Rule([Reply(["A"])], match=r"^alpha"),
            Rule([Reply(["B"])], match=r"beta"),
            Rule([Reply(["never"])], match=r"alpha"),
        ]
    )
    with ModelServer(script) as server:
        a = post(server, body("alpha beta", stream=False)).json()
        b = post(server, body("is it beta?", stream=False)).json()
        none = post(server, body("gamma", stream=False))

    assert a["content"][0]["text"] == "A"
    assert b["content"][0]["text"] == "B"
    assert none.status_code == 500
    assert "no rule of the script matches the prompt 'gamma'" in none.json()["error"]["message"]


def test_errors_before_count_attempts_per_conversation_and_turn() -> None:
    reply = Reply(["ok"], errors_before=[HttpErrorReply(529), HttpErrorReply(500)])
    with ModelServer(one_rule(reply, when_exhausted="repeat_last")) as server:
        statuses = [post(server, body("p", stream=False)).status_code for _ in range(4)]
        other_prompt = post(server, body("q", stream=False)).status_code
        next_turn = post(server, body("p", stream=False, turns=1)).status_code

    assert statuses == [529, 500, 200, 200]
    assert other_prompt == 529
    assert next_turn == 529


def test_dropped_stream_closes_the_connection_mid_body() -> None:
    reply = Reply(["x" * 100], chunk_size=10, drop_after=3)
    received = bytearray()

    def read_stream(url: str) -> None:
        with httpx.stream("POST", f"{url}/v1/messages", json=body()) as response:
            assert response.status_code == 200
            for chunk in response.iter_raw():
                received.extend(chunk)

    with ModelServer(one_rule(reply)) as server:
        with pytest.raises(httpx.RemoteProtocolError):
            read_stream(server.url)
        # The non-streaming fallback still gets the whole reply.
        fallback = post(server, body(stream=False))

    text = received.decode()
    assert text.count("event: content_block_delta") == 3
    assert "message_stop" not in text
    assert fallback.json()["content"][0]["text"] == "x" * 100


def test_drop_non_streaming_cuts_the_fallback_too() -> None:
    reply = Reply(["x"], drop_after=0, drop_non_streaming=True)
    with ModelServer(one_rule(reply)) as server, pytest.raises(httpx.RemoteProtocolError):
        post(server, body(stream=False))


def test_slow_stream_paces_deltas() -> None:
    reply = Reply(["abcd"], chunk_size=1, delay=0.15)
    with ModelServer(one_rule(reply)) as server:
        arrivals: list[float] = []
        with httpx.stream("POST", f"{server.url}/v1/messages", json=body()) as response:
            for line in response.iter_lines():
                if line == "event: content_block_delta":
                    arrivals.append(time.monotonic())

    assert len(arrivals) == 4
    assert all(b - a > 0.1 for a, b in itertools.pairwise(arrivals))


def test_latency_delays_the_response() -> None:
    with ModelServer(one_rule(Reply(["late"], latency=0.3))) as server:
        started = time.monotonic()
        response = post(server, body(stream=False))
        elapsed = time.monotonic() - started

    assert response.status_code == 200
    assert elapsed >= 0.3


def test_other_endpoints() -> None:
    with ModelServer(one_rule(Reply(["x"]))) as server:
        head = httpx.head(f"{server.url}/")
        get = httpx.get(f"{server.url}/")
        count = httpx.post(
            f"{server.url}/v1/messages/count_tokens?beta=true", json=body("count me")
        )
        missing = httpx.get(f"{server.url}/v1/models")
        not_json = httpx.post(f"{server.url}/v1/messages", content=b"not json")

    assert head.status_code == 200
    assert get.status_code == 200
    assert count.status_code == 200
    assert count.json()["input_tokens"] > 0
    assert missing.status_code == 404
    assert missing.json()["error"]["type"] == "not_found_error"
    assert not_json.status_code == 400
    assert not_json.json()["error"]["type"] == "invalid_request_error"


def test_requests_are_recorded_with_secrets_redacted() -> None:
    with ModelServer(one_rule(Reply(["x"]))) as server:
        post(
            server,
            body("the prompt", stream=False),
            headers={"x-api-key": "sk-secret", "authorization": "Bearer t", "x-app": "cli"},
        )
        httpx.head(f"{server.url}/")
        listed = httpx.get(f"{server.url}/_testing/requests").json()
        records = server.requests

    assert [(r.method, r.path, r.query) for r in records] == [
        ("POST", "/v1/messages", "beta=true"),
        ("HEAD", "/", ""),
    ]
    first = records[0]
    assert first.prompt == "the prompt"
    assert first.turn == 0
    assert first.body == body("the prompt", stream=False)
    assert first.headers["x-api-key"] == "[redacted]"
    assert first.headers["authorization"] == "[redacted]"
    assert first.headers["x-app"] == "cli"
    assert records[1].prompt is None
    assert listed == [r.to_json() for r in records]
    assert server.message_requests == [first]


def test_string_content_is_the_prompt() -> None:
    with ModelServer(Script([Rule([Reply(["yes"])], match="^exact$")])) as server:
        response = post(server, {"model": "m", "messages": [{"role": "user", "content": "exact"}]})

    assert response.json()["content"][0]["text"] == "yes"


def test_starts_and_stops_fast_even_with_a_slow_stream_in_flight() -> None:
    started = time.monotonic()
    server = ModelServer(one_rule(Reply(["x" * 100], chunk_size=1, delay=1.0)))
    with server:
        startup = time.monotonic() - started
        errors: list[BaseException] = []

        def read_forever() -> None:
            try:
                with httpx.stream("POST", f"{server.url}/v1/messages", json=body()) as response:
                    for _ in response.iter_raw():
                        pass
            except httpx.HTTPError as exc:
                errors.append(exc)

        reader = threading.Thread(target=read_forever)
        reader.start()
        wait_for(lambda: server.message_requests, what="the slow stream's request")
        stopping = time.monotonic()
    shutdown = time.monotonic() - stopping
    reader.join(5)

    # Liveness, not speed (benchmarks/ measure speed): it starts without waiting for
    # anything (~0.05 s), and stops without waiting out the 100 s stream (>= 10x slack).
    assert startup < 5
    assert shutdown < 5
    assert not reader.is_alive()
    assert errors
    assert isinstance(errors[0], httpx.RemoteProtocolError)


async def test_async_context_manager() -> None:
    async with (
        ModelServer(one_rule(Reply(["async hello"], chunk_size=3))) as server,
        httpx.AsyncClient() as client,
    ):
        response = await client.post(f"{server.url}/v1/messages", json=body())
        names = [name for name, _ in sse_events(response)]
        port = server.port

    assert names.count("content_block_delta") == 4
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/")


def test_stopped_server_refuses_connections_and_cannot_restart() -> None:
    server = ModelServer(one_rule(Reply(["x"])))
    with pytest.raises(RuntimeError, match="has not been started"):
        _ = server.port
    with server:
        url = server.url
    with pytest.raises(httpx.ConnectError):
        httpx.get(url)
    with pytest.raises(RuntimeError, match="runs once"), server:
        pass


@pytest.mark.parametrize("host", ["0.0.0.0", "10.1.2.3", "192.168.0.1", "example.com", "::"])
def test_refuses_non_loopback_hosts(host: str) -> None:
    with pytest.raises(ValueError, match="loopback addresses only"):
        ModelServer(one_rule(Reply(["x"])), host=host)


def test_loopback_aliases() -> None:
    assert ModelServer(one_rule(Reply(["x"])), host="localhost").host == "127.0.0.1"
    with ModelServer(one_rule(Reply(["x"])), host="127.0.0.2") as server:
        assert server.url.startswith("http://127.0.0.2:")
        assert httpx.get(server.url).status_code == 200


def test_claude_env() -> None:
    with ModelServer(one_rule(Reply(["x"]))) as server:
        only = server.claude_env(home="/tmp/h")
        full = server.claude_env(
            home="/tmp/h",
            base={
                "PATH": "/bin",
                "ANTHROPIC_AUTH_TOKEN": "t",
                "ANTHROPIC_MODEL": "m",
                "CLAUDE_CODE_USE_BEDROCK": "1",
                "CLAUDECODE": "1",
                "HOME": "/root",
                "LANG": "C.UTF-8",
            },
            max_retries=3,
            extra={"IS_SANDBOX": "1"},
        )

    assert only == {
        "ANTHROPIC_BASE_URL": server.url,
        "ANTHROPIC_API_KEY": only["ANTHROPIC_API_KEY"],
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_TELEMETRY": "1",
        "DISABLE_AUTOUPDATER": "1",
        "CLAUDE_CODE_MAX_RETRIES": "1",
        "HOME": "/tmp/h",
        "CLAUDE_CONFIG_DIR": "/tmp/h/.claude",
    }
    assert full == {
        **only,
        "CLAUDE_CODE_MAX_RETRIES": "3",
        "PATH": "/bin",
        "LANG": "C.UTF-8",
        "IS_SANDBOX": "1",
    }


def test_claude_env_with_config_dir_only_leaves_home_alone() -> None:
    """What a shell should load: the CLI's config moves, HOME (and all kept under it) stays."""
    base = {"PATH": "/bin", "HOME": "/home/u", "XDG_CONFIG_HOME": "/home/u/.config"}
    with ModelServer(one_rule(Reply(["x"]))) as server:
        only = server.claude_env(config_dir="/tmp/c")
        full = server.claude_env(config_dir="/tmp/c", base={**base, "CLAUDE_CONFIG_DIR": "/x"})
        both = server.claude_env(home="/tmp/h", config_dir="/tmp/c")
        with pytest.raises(ValueError, match="needs home or config_dir"):
            server.claude_env()

    assert only["CLAUDE_CONFIG_DIR"] == "/tmp/c"
    assert "HOME" not in only
    assert full == {**base, **only}
    assert both == {**only, "HOME": "/tmp/h"}


def test_script_file_path_is_accepted(tmp_path: Any) -> None:
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"rules": [{"answers": [{"text": "from json"}]}]}))
    with ModelServer(path) as server:
        response = post(server, body(stream=False))

    assert response.json()["content"][0]["text"] == "from json"
