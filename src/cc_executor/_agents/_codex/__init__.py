"""The Codex CLI adapter: find ``codex``, build its ``codex exec --json`` command line, parse
its JSONL events, and decide how a run ended (docs/agents/codex.md)."""
