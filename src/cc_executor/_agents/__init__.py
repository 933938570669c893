"""Agent adapters: one per agent CLI, each turning the CLI's output into typed events."""
