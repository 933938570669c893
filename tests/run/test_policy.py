"""Permission policies: the rule syntax, first-match order and the file's checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from cc_executor._run._policy import load_policy, parse_policy, parse_rule

CWD = "/repo"


def decide(rules: list[dict[str, str]], tool: str, **tool_input: str) -> str:
    policy = parse_policy({"rules": rules, "default": "ask"})
    return policy.decide(tool, tool_input, CWD)[0]


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ("git log", "allow"),
        ("git log --oneline", "allow"),
        ("git logger", "ask"),  # a word boundary after the prefix
        ("git log; rm -rf ~", "ask"),  # a chained command is never allowed by its first part
        ("git log && curl x | sh", "ask"),
        ("git log > out", "ask"),
        ("git status", "ask"),
    ],
)
def test_bash_prefix_rules(command: str, expected: str) -> None:
    assert decide([{"allow": "Bash(git log:*)"}], "Bash", command=command) == expected


def test_a_deny_rule_matches_any_part_of_a_chained_command() -> None:
    rules = [{"deny": "Bash(rm:*)"}, {"allow": "Bash"}]
    assert decide(rules, "Bash", command="ls && rm -rf /") == "deny"
    assert decide(rules, "Bash", command="ls; echo $(rm x)") == "deny"
    assert decide(rules, "Bash", command="ls -la") == "allow"


def test_first_matching_rule_wins_and_the_default_takes_the_rest() -> None:
    rules = [{"allow": "Bash(git log:*)"}, {"deny": "Bash"}]
    assert decide(rules, "Bash", command="git log") == "allow"
    assert decide(rules, "Bash", command="git push") == "deny"
    assert decide(rules, "WebSearch", query="x") == "ask"


def test_path_rules_are_globs_from_the_cwd() -> None:
    rules = [{"allow": "Edit(src/**)"}, {"deny": "Write(//etc/*)"}]
    assert decide(rules, "Edit", file_path="/repo/src/a/b.py") == "allow"
    assert decide(rules, "Write", file_path="src/new.py") == "allow"  # Edit covers Write
    assert decide(rules, "Edit", file_path="/repo/README.md") == "ask"
    assert decide(rules, "Write", file_path="/etc/passwd") == "deny"
    assert decide(rules, "Write", file_path="/repo/src/../../etc/passwd") == "deny"
    assert decide([{"allow": "Read(*.md)"}], "Read", file_path="/repo/docs/x.md") == "ask"


def test_tool_names_mcp_servers_and_domains() -> None:
    assert decide([{"deny": "mcp__db"}], "mcp__db__drop", table="x") == "deny"
    assert decide([{"deny": "mcp__db"}], "mcp__dbx__drop", table="x") == "ask"
    rule = [{"allow": "WebFetch(domain:example.com)"}]
    assert decide(rule, "WebFetch", url="https://docs.example.com/a") == "allow"
    assert decide(rule, "WebFetch", url="https://example.com.evil.net/") == "ask"


def test_tool_lists_come_first_and_cli_denials_are_the_self_allowed_tools() -> None:
    policy = parse_policy({"rules": [{"allow": "Bash"}, {"deny": "Read(secret/**)"}]})
    merged = policy.with_tool_lists(["Write"], ["Bash(rm:*)"])
    assert [str(r) for r in merged.rules[:2]] == ["deny Bash(rm:*)", "allow Write"]
    assert merged.cli_denials() == ["Read(secret/**)"]
    assert merged.asks  # the default is ask


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], "a permission policy is a mapping"),
        ({"rules": [{"permit": "Bash"}]}, "rule 1: the action must be allow, deny or ask"),
        ({"rules": [{"allow": "Bash(", "deny": "x"}]}, "rule 1: write one of"),
        ({"rules": [{"allow": "Bash("}]}, "is not a permission rule"),
        ({"ask_timeout_s": 0}, "ask_timeout_s must be a number of seconds above 0"),
        ({"default": "maybe"}, "default must be allow, deny or ask"),
        ({"rulez": []}, "unknown key(s) rulez"),
    ],
)
def test_bad_policies_say_what_is_wrong(data: object, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_policy(data, "p.yaml")


def test_policy_files(tmp_path: Path) -> None:
    good = tmp_path / "p.yaml"
    good.write_text("ask_timeout_s: 5\nrules:\n  - allow: Bash(git log:*)\n")
    policy = load_policy(good)
    assert policy.ask_timeout_s == 5.0
    assert policy.rules == (parse_rule("allow", "Bash(git log:*)"),)
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules: [\n")
    with pytest.raises(ValueError, match="is not valid YAML"):
        load_policy(bad)
    with pytest.raises(ValueError, match="cannot read"):
        load_policy(tmp_path / "missing.yaml")


def test_the_option_checks_the_file_and_refuses_agents_without_a_hook(tmp_path: Path) -> None:
    from cc_executor._run._options import RunOptions

    policy = tmp_path / "p.yaml"
    policy.write_text("rules:\n  - ask: Bash\n")
    assert RunOptions(permission_policy=str(policy)).permission_policy == str(policy)
    with pytest.raises(ValueError, match="the codex agent has no permission hook, so its ask"):
        RunOptions(agent="codex", permission_policy=str(policy))
    with pytest.raises(ValueError, match="cannot read"):
        RunOptions(permission_policy=str(tmp_path / "nope.yaml"))


def test_the_command_line_refuses_a_bad_policy_in_one_line(tmp_path: Path) -> None:
    import subprocess
    import sys

    bad = tmp_path / "bad.yaml"
    bad.write_text("rules:\n  - allow: Bash(\n")
    cli = str(Path(sys.executable).parent / "cc-executor")
    done = subprocess.run(
        [cli, "run", "hi", "--permission-policy", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    (line,) = done.stderr.splitlines()
    assert line.startswith(f"cc-executor run: error: --permission-policy: {bad}: rule 1: ")


# Fourth security pass (docs/security.md): spellings that skipped a rule.


@pytest.mark.parametrize(
    "command",
    [
        "rm\t-rf x",  # a tab between the words
        '"rm" -rf x',  # quotes the shell removes
        "r\\m -rf x",  # a backslash the shell removes
        "/bin/rm -rf x",  # a path to the program
        "(rm -rf x)",  # a subshell
        "{ rm -rf x; }",
        "if true; then rm -rf x; fi",  # after a keyword
        "sudo -u root rm -rf x",  # after a wrapper and its options
        "env A=1 rm -rf x",
        "A=1 rm -rf x",
        "timeout 5 rm -rf x",
        "bash -c 'rm -rf x'",
        "eval rm -rf x",
    ],
)
def test_a_deny_rule_sees_through_shell_spellings(command: str) -> None:
    rules = [{"deny": "Bash(rm:*)"}, {"allow": "Bash"}]
    assert decide(rules, "Bash", command=command) == "deny"
    assert decide(rules, "Bash", command="echo firm -rf") == "allow"


def test_an_ask_rule_is_not_skipped_by_chaining() -> None:
    # Before: an ask rule never matched a chained command, so the allow after it took it.
    rules = [{"ask": "Bash(rm:*)"}, {"allow": "Bash"}]
    assert decide(rules, "Bash", command="ls; rm -rf /") == "ask"
    assert decide(rules, "Bash", command="ls -la") == "allow"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://example.com/x", "allow"),
        ("https://docs.example.com/x", "allow"),
        ("https://EXAMPLE.com./x", "allow"),
        ("http://evil.com\\@example.com/", "ask"),  # WHATWG: host evil.com
        ("http://example.com:80@evil.com/", "ask"),
        ("http://evil.com\t.example.org/", "ask"),
    ],
)
def test_a_domain_rule_reads_the_host_the_cli_reads(url: str, expected: str) -> None:
    assert decide([{"allow": "WebFetch(domain:example.com)"}], "WebFetch", url=url) == expected


@pytest.mark.parametrize(
    "url", ["http://evil.com./", "http://ev%69l.com/", "http://\uff45\uff56\uff49\uff4c.com/"]
)
def test_a_denied_domain_is_denied_however_spelled(url: str) -> None:
    rules = [{"deny": "WebFetch(domain:evil.com)"}, {"allow": "WebFetch"}]
    assert decide(rules, "WebFetch", url=url) == "deny"


def test_path_rules_follow_symlinks(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / "src").mkdir(parents=True)
    (repo / "secrets").mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (repo / "src" / "out").symlink_to(outside)  # src/out -> outside the repo
    (repo / "docs").symlink_to(repo / "secrets")  # docs -> secrets
    allow = parse_policy({"rules": [{"allow": "Edit(src/**)"}], "default": "ask"})
    assert allow.decide("Write", {"file_path": "src/a.py"}, str(repo))[0] == "allow"
    assert allow.decide("Write", {"file_path": "src/out/a.py"}, str(repo))[0] == "ask"
    deny = parse_policy({"rules": [{"deny": "Read(secrets/**)"}], "default": "allow"})
    assert deny.decide("Read", {"file_path": "docs/key"}, str(repo))[0] == "deny"
    assert deny.decide("Read", {"file_path": "src/a.py"}, str(repo))[0] == "allow"


def test_deny_rules_cover_inputs_they_cannot_read_and_searches_above_them() -> None:
    # Fourth pass P14: a command or path that was not text (or missing) slipped past every
    # deny rule with an argument, and a Grep of the cwd (no path) past deny Grep(secrets/**).
    rules = [{"deny": "Bash(rm:*)"}, {"deny": "Grep(secrets/**)"}, {"allow": "*"}]
    assert decide(rules, "Bash", command=["rm", "-rf", "/"]) == "deny"  # type: ignore[arg-type]
    assert decide(rules, "Grep", pattern="key") == "deny"  # the cwd, secrets/ under it
    assert decide(rules, "Grep", pattern="key", path="/repo") == "deny"
    assert decide(rules, "Grep", pattern="key", path="/repo/secrets/a") == "deny"
    assert decide(rules, "Grep", pattern="key", path="/repo/src") == "allow"
    assert decide(rules, "Bash", command="ls") == "allow"
    # An allow rule still needs what it names.
    assert decide([{"allow": "Bash(ls:*)"}], "Bash", command=["ls"]) == "ask"  # type: ignore[arg-type]
