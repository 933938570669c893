"""The command adapter (``--agent command --agent-spec FILE``): any agent CLI described by a
small TOML spec: its argv, how the prompt, the model and the endpoint reach it, and how its
output reads (plain text, JSON Lines with a field mapping, or Claude Code's stream-json).
See docs/agents/command.md."""
