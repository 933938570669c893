"""The Gemini CLI adapter: find ``gemini``, build its ``gemini -p`` command line with
``--output-format stream-json``, parse its events, and decide how a run ended
(docs/agents/gemini.md)."""
