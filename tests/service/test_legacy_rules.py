"""The old clients' ``claude ...`` command lines: tool rules keep their parentheses."""

from __future__ import annotations

import pytest

from cc_executor._errors import InvalidRequest
from cc_executor._service._legacy import translate_command


def test_a_rule_with_spaces_inside_parentheses_stays_one_rule() -> None:
    prompt, options = translate_command(
        'claude -p "clean up" --dangerously-skip-permissions '
        '--disallowedTools "Bash(rm -rf:*)" --allowedTools "Bash(git diff:*),Read Write"'
    )
    assert prompt == "clean up"
    # Split on the space, "Bash(rm" and "-rf:*)" would forbid nothing: rm -rf would run.
    assert options["disallowed_tools"] == ["Bash(rm -rf:*)"]
    assert options["allowed_tools"] == ["Bash(git diff:*)", "Read", "Write"]


@pytest.mark.parametrize("rules", ["Bash(rm -rf:*", "Bash)rm(", "Read,Bash(a))"])
def test_unbalanced_parentheses_are_refused_not_guessed(rules: str) -> None:
    with pytest.raises(InvalidRequest, match="unbalanced parentheses"):
        translate_command(f'claude -p x --disallowedTools "{rules}"')
