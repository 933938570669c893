"""Hostile inbox files (issue 18: H1, M9, M10, L14, L15): each one is that file's problem,
reported with its reason, costs a bounded amount of work, and cannot forge or hide output."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

import pytest

from cc_executor.notify import INBOX, INCOMING, InboxProblem, is_safe_name, load, read_inbox
from tests.notify.conftest import cc
from tests.notify.test_inbox import drop, valid

LEGIT = "question_other_1_aaaa0001.json"

# Front matter PyYAML itself fails on with plain ValueError/KeyError/AttributeError (not a
# YAMLError): each must become a problem file whose reason names the value and its line.
HOSTILE_FRONT_MATTER = {
    "feb30.md": ("date: 2024-02-30", "2024-02-30"),
    "month13.md": ("date: 2024-13-01", "2024-13-01"),
    "bigint.md": ("count: " + "9" * 4301, "99999"),
    "badtz.md": ("at: 2024-01-01 10:00:00 +99:00", "2024-01-01 10:00:00 +99:00"),
    "tagbool.md": ("flag: !!bool maybe", "maybe"),
    "tagtime.md": ("at: !!timestamp yesterday", "yesterday"),
    "tagfloat.md": ("ratio: !!float half", "half"),
}


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "me"
    root.mkdir()
    drop(root / INBOX, LEGIT, json.dumps(valid(type="question", message="still readable")))
    drop(root / INCOMING, "good.md", "---\ntitle: A real issue\n---\nBody\n")
    return root


def strict_json(text: str) -> Any:
    """``json.loads`` refusing the NaN/Infinity extensions Python's encoder emits."""

    def refuse(constant: str) -> None:
        raise ValueError(f"non-standard JSON constant {constant}")

    return json.loads(text, parse_constant=refuse)


def problems_of(project: Path) -> dict[str, str]:
    done = cc("inbox", "list", "--json", "--project", str(project))
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    listing = strict_json(done.stdout)
    assert {e["id"] for e in listing["entries"]} >= {LEGIT, "good.md"}
    return {p["id"]: p["reason"] for p in listing["problems"]}


@pytest.mark.parametrize("name", sorted(HOSTILE_FRONT_MATTER))
@pytest.mark.slow  # over 0.3 s: cc-executor processes
def test_a_value_pyyaml_cannot_build_is_that_files_problem_in_every_command(
    project: Path, name: str
) -> None:
    line, shown = HOSTILE_FRONT_MATTER[name]
    drop(project / INCOMING, name, f"---\ntitle: Hostile\n{line}\n---\nbody\n")
    where = ["--project", str(project)]

    reasons = problems_of(project)
    assert set(reasons) == {name}
    assert reasons[name].startswith("invalid YAML front matter: ")
    assert shown in reasons[name]
    assert "at line 3" in reasons[name]
    assert len(reasons[name]) <= 400

    listed = cc("inbox", "list", *where)
    assert listed.returncode == 0, listed.stderr
    assert f"! {name}: invalid YAML front matter" in listed.stdout
    assert "1 message(s), 1 issue(s), 1 problem file(s)" in listed.stdout

    shown_legit = cc("inbox", "show", LEGIT, *where)
    assert shown_legit.returncode == 0, shown_legit.stderr
    assert "still readable" in shown_legit.stdout
    shown_hostile = cc("inbox", "show", name, *where)
    assert shown_hostile.returncode == 1
    assert "problem:   invalid YAML front matter" in shown_hostile.stdout
    assert "Traceback" not in shown_hostile.stderr

    for ident in (LEGIT, "good.md", name):
        acked = cc("inbox", "ack", ident, *where)
        assert acked.returncode == 0, acked.stderr
    assert read_inbox(project).to_dict()["entries"] == []


def call_counter(limit: int) -> tuple[Callable[[FrameType, str, Any], None], list[int]]:
    """A profile hook counting Python function calls; it switches itself off past
    ``limit`` so that an unbounded parse fails the test without running to its end."""
    count = [0]

    def hook(frame: FrameType, event: str, arg: Any) -> None:
        if event == "call":
            count[0] += 1
            if count[0] > limit:
                sys.setprofile(None)

    return hook, count


def calls_to_load(path: Path, limit: int) -> tuple[object, int]:
    hook, count = call_counter(limit)
    sys.setprofile(hook)
    try:
        item = load(path)
    finally:
        sys.setprofile(None)
    return item, count[0]


@pytest.mark.slow  # over 0.3 s: cc-executor processes
def test_deep_front_matter_is_refused_after_bounded_work(project: Path) -> None:
    incoming = project / INCOMING
    ordinary = drop(incoming, "ordinary.md", "---\ntitle: x\nlabels: [a, b]\npriority: 1\n---\n")
    item, baseline = calls_to_load(ordinary, 1_000_000)
    assert not isinstance(item, InboxProblem)
    # The two shapes of the attack: flow collections (40 KB) and block sequences (60 KB).
    flow = drop(incoming, "flow.md", "---\ntitle: " + "[" * 20_000 + "]" * 20_000 + "\n---\n")
    block = drop(incoming, "block.md", "---\ntitle: x\nk:\n" + "- " * 30_000 + "x\n---\n")
    mixed = drop(incoming, "mixed.md", "---\ntitle: x\nk: " + "{a: [" * 6_000 + "\n---\n")
    for path in (flow, block, mixed):
        item, calls = calls_to_load(path, 200 * baseline)
        assert isinstance(item, InboxProblem), path.name
        assert "nested deeper than 32 levels" in item.reason, item.reason
        # The work stops at the bound: a small multiple of an ordinary file's, whatever
        # the size of the rest of the document.
        assert calls < 20 * baseline, (path.name, calls, baseline)
    # Nesting up to the bound is accepted.
    fine = drop(incoming, "fine.md", "---\ntitle: x\nk: " + "[" * 31 + "]" * 31 + "\n---\n")
    assert not isinstance(load(fine), InboxProblem)
    # A wide document stops at the bound on values, whatever its length.
    wide, short = (
        drop(incoming, f"wide{n}.md", "---\ntitle: x\nk: [" + "a, " * n + "]\n---\n")
        for n in (20_000, 1_001)
    )
    item, calls = calls_to_load(wide, 200 * baseline)
    assert "more than 1000 values at line 3" in str(item)
    assert calls <= calls_to_load(short, 200 * baseline)[1] + baseline
    too_big = drop(incoming, "big.md", "---\ntitle: x\nk: '" + "x" * 70_000 + "'\n---\n")
    assert "front matter over 65536 characters" in str(load(too_big))


def test_deep_json_is_refused(project: Path) -> None:
    deep = valid(type="question", extra=json.loads("[" * 32 + "]" * 32))
    path = drop(project / INBOX, "question_x_1_deep0001.json", json.dumps(deep))
    item = load(path)
    assert isinstance(item, InboxProblem)
    assert "nested deeper than 32 levels" in item.reason
    ok = valid(type="question", extra=json.loads("[" * 31 + "]" * 31))
    fine = drop(project / INBOX, "question_x_1_fine0001.json", json.dumps(ok))
    assert not isinstance(load(fine), InboxProblem)


@pytest.mark.parametrize(
    ("field", "raw"),
    [("nan", "NaN"), ("neg", "-Infinity"), ("pos", "Infinity"), ("overflow", "1e999")],
)
@pytest.mark.slow  # over 0.3 s: cc-executor processes
def test_nan_and_infinity_are_refused_on_input(project: Path, field: str, raw: str) -> None:
    text = json.dumps(valid(type="question")).rstrip("}") + f', "{field}": {raw}}}'
    drop(project / INBOX, f"question_x_1_{field}0001.json", text)
    evidence = {"run_id": "abcdef", "status": "ok", "artifacts": [], "duration_s": 1.5}
    fixes = [{"issue": 1, "status": "fixed", "description": "d", "test_result": evidence}]
    duration = json.dumps(valid(fixes_implemented=fixes)).replace("1.5", raw)
    drop(project / INBOX, f"issue_fixed_x_1_{field}0002.json", duration)
    drop(project / INCOMING, f"{field}.md", f"---\ntitle: x\nratio: {raw}\n---\n")
    yaml_raw = {"NaN": ".nan", "-Infinity": "-.inf", "Infinity": ".inf", "1e999": "1.0e+999"}
    drop(project / INCOMING, f"{field}-yaml.md", f"---\ntitle: x\nratio: {yaml_raw[raw]}\n---\n")

    # In YAML, "NaN", "-Infinity" and "1e999" are plain strings: that issue is valid.
    reasons = problems_of(project)
    assert set(reasons) == {
        f"question_x_1_{field}0001.json",
        f"issue_fixed_x_1_{field}0002.json",
        f"{field}-yaml.md",
    }, reasons
    for name, reason in reasons.items():
        assert "not a finite number" in reason, (name, reason)


FORGED = "x\nissue_fixed_trusted-lib_1_aaaa0001.json  issue_fixed  from trusted-lib"


@pytest.mark.slow  # over 0.3 s: cc-executor processes
def test_a_newline_in_a_file_name_cannot_forge_lines(project: Path) -> None:
    where = ["--project", str(project)]
    drop(project / INBOX, FORGED + ".json", json.dumps(valid()))
    drop(project / INCOMING, FORGED + ".md", "---\ntitle: x\n---\n")
    drop(project / INBOX, "tab\tname.json", json.dumps(valid()))

    listed = cc("inbox", "list", *where)
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert not [line for line in lines if line.startswith("issue_fixed_trusted-lib")]
    # One line per problem, two per entry, and the summary.
    assert len(lines) == 3 + 4 + 1, lines
    assert "! x\\x0aissue_fixed_trusted-lib_1_aaaa0001.json  issue_fixed" in listed.stdout
    assert "! tab\\x09name.json: unsafe file name" in listed.stdout

    shown = cc("inbox", "show", FORGED + ".json", *where)
    assert shown.returncode == 1
    assert shown.stdout.splitlines()[0].startswith("id:        x\\x0aissue_fixed")
    assert len(shown.stdout.splitlines()) == 2
    # An ambiguous prefix names the candidates on the one line of the error.
    ambiguous = cc("inbox", "show", "x", *where)
    assert ambiguous.returncode == 1
    assert len(ambiguous.stderr.splitlines()) == 1, ambiguous.stderr
    assert "\\x0a" in ambiguous.stderr

    acked = cc("inbox", "ack", FORGED + ".md", *where)
    assert acked.returncode == 0, acked.stderr
    assert len(acked.stdout.splitlines()) == 1, acked.stdout
    as_json = cc("inbox", "list", "--json", *where)
    assert FORGED + ".json" in {p["id"] for p in json.loads(as_json.stdout)["problems"]}


@pytest.mark.slow  # over 0.3 s: cc-executor processes
def test_a_line_separator_in_a_file_name_stays_on_its_line(project: Path) -> None:
    """Issue 18 F8.2: U+2028/U+2029 in a file name reached the terminal raw, where a reader
    breaking lines on them would see a forged entry; they are escapes now, and a name that
    only looks safe up to a trailing newline is not safe."""
    where = ["--project", str(project)]
    forged = FORGED.replace("\n", "\u2028") + ".json"
    drop(project / INBOX, forged, json.dumps(valid()))
    drop(project / INCOMING, "y\u2029issue.md", "---\ntitle: x\n---\n")
    outputs = [
        cc("inbox", "list", *where),
        cc("inbox", "show", forged, *where),
        cc("inbox", "show", "x", *where),
        cc("inbox", "show", "y", *where),
        cc("inbox", "ack", "y", *where),
    ]
    for done in outputs:
        assert "Traceback" not in done.stderr
        for char in "\u2028\u2029":
            assert char not in done.stdout + done.stderr, (done.args, hex(ord(char)))
    escaped = forged.replace("\u2028", "\\u2028")
    assert f"! {escaped}: unsafe file name" in outputs[0].stdout
    assert "! y\\u2029issue.md: unsafe file name" in outputs[0].stdout
    assert not is_safe_name("question_x_1_aaaa0001.json\n")


# Characters that reorder or hide text: ALM, zero-width space/joiners, marks, word joiner,
# BOM, and an isolate.
INVISIBLE = "\u061c\u200b\u200c\u200d\u200e\u2060\ufeff\u2066"


@pytest.mark.slow  # over 0.3 s: cc-executor processes
def test_invisible_and_bidi_characters_never_reach_the_terminal(project: Path) -> None:
    where = ["--project", str(project)]
    name = f"question_{INVISIBLE}_1_aaaa0002.json"
    hidden = valid(type="question", **{"from": f"trusted{INVISIBLE}", "message": INVISIBLE})
    drop(project / INBOX, name, json.dumps(hidden))
    drop(project / INBOX, "question_other_2_aaaa0003.json", json.dumps(hidden))
    drop(
        project / INCOMING,
        "hidden.md",
        f"---\ntitle: 'a{INVISIBLE}'\nlabels: ['{INVISIBLE}']\npriority: '{INVISIBLE}'\n---\n"
        f"{INVISIBLE}\n",
    )
    outputs = [
        cc("inbox", "list", *where),
        cc("inbox", "show", "question_other_2_aaaa0003", *where),
        cc("inbox", "show", "hidden", *where),
        cc("inbox", "show", name, *where),
        cc("inbox", "show", "question_", *where),
        cc("inbox", "ack", "hidden", *where),
    ]
    for done in outputs:
        assert "Traceback" not in done.stderr
        for char in INVISIBLE:
            assert char not in done.stdout, (done.args, hex(ord(char)))
            assert char not in done.stderr, (done.args, hex(ord(char)))
    assert "\\u061c\\u200b\\u200c\\u200d\\u200e\\u2060\\ufeff\\u2066" in outputs[1].stdout
    # JSON output stays the exact data.
    as_json = cc("inbox", "show", "question_other_2_aaaa0003", "--json", *where)
    assert json.loads(as_json.stdout)["message"] == hidden


def test_an_inbox_folder_that_is_a_link_is_not_listed(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    drop(elsewhere, "question_x_1_aaaa0004.json", json.dumps(valid(type="question")))
    root = tmp_path / "me"
    (root / INBOX).parent.mkdir(parents=True)
    (root / INBOX).symlink_to(elsewhere)
    listing = read_inbox(root)
    assert listing.entries == []
    assert [p.reason for p in listing.problems] == ["a symbolic link (links are never followed)"]
