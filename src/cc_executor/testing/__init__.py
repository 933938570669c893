"""A scripted Anthropic Messages API server for running the real Claude Code CLI offline.

:class:`ModelServer` binds a loopback port and answers the CLI's ``POST /v1/messages``
requests from a :class:`Script`: fixed or long text, slow streams, tool calls, thinking blocks,
HTTP errors and dropped streams, chosen deterministically by the prompt and the turn of the
conversation. It records every request, so a test can check what the model was sent::

    from cc_executor.testing import ModelServer, Reply, Rule, Script, ToolUse

    script = Script([
        Rule(match=r"hello\\.txt", answers=[
            Reply([ToolUse("Write", {"file_path": "hello.txt", "content": "hi\\n"})]),
            Reply(["Created hello.txt."]),
        ]),
        Rule(answers=[Reply(["Hello!"])]),
    ])
    with ModelServer(script) as server:
        env = server.claude_env(home=tmp_home, base=os.environ)
        subprocess.run([claude, "-p", ...], input=prompt, env=env, ...)
        assert server.message_requests[0].prompt == prompt

Scripts can also be JSON or YAML files (:func:`load_script`, format in :func:`parse_script` and,
with an example of every field, in docs/testing.md); ``examples/*.yaml`` in this package are
some. ``cc-executor testing serve --script FILE|NAME`` runs a server from the command line
(``--script write_file`` names a shipped example).
"""

from __future__ import annotations

from cc_executor._lazy import lazy_exports, renamed

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from cc_executor.testing._script import (
        Answer,
        Block,
        HttpErrorReply,
        Reply,
        Rule,
        Script,
        ScriptError,
        Text,
        Thinking,
        ToolUse,
        Usage,
        load_script,
        parse_script,
    )
    from cc_executor.testing._server import ModelServer, RecordedRequest

# Everything loads on first use: importing the package stays cheap until a name is used
# (the server brings starlette and uvicorn).
_EXPORTS = {
    **dict.fromkeys(
        (
            "Answer", "Block", "HttpErrorReply", "Reply", "Rule", "Script", "ScriptError", "Text",
            "Thinking", "ToolUse", "Usage", "load_script", "parse_script",
        ),
        "cc_executor.testing._script",
    ),
    "ModelServer": "cc_executor.testing._server",
    "RecordedRequest": "cc_executor.testing._server",
}  # fmt: skip

__all__ = [
    "Answer",
    "Block",
    "HttpErrorReply",
    "ModelServer",
    "RecordedRequest",
    "Reply",
    "Rule",
    "Script",
    "ScriptError",
    "Text",
    "Thinking",
    "ToolUse",
    "Usage",
    "load_script",
    "parse_script",
]


_load = renamed(
    __name__,
    {"HttpError": "HttpErrorReply"},
    globals(),
    lazy_exports(__name__, _EXPORTS, globals()),
)


def __getattr__(name: str) -> Any:
    # Checked on first use, not on import: `cc-executor --help` imports this package.
    if name in _EXPORTS:
        from cc_executor._extras import require_extra

        require_extra("testing", "cc_executor.testing")
    return _load(name)
