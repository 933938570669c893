"""JSON answers: found wherever the model put them, repaired when damaged, never invented."""

from __future__ import annotations

import json
from types import MappingProxyType
from typing import Any

import pytest

from cc_executor._run._jsonmode import (
    MAX_CANDIDATES,
    JsonExtraction,
    extract_json,
    merge_json_result,
)
from tests._scaling import assert_linear


def found(text: str, **options: Any) -> JsonExtraction:
    result = extract_json(text, **options)
    assert result.found, result.error
    assert result.error is None
    assert result.schema_errors == []
    assert result.source
    assert result.source in text
    return result


def not_found(text: str, **options: Any) -> str:
    result = extract_json(text, **options)
    assert not result.found
    assert result.value is None
    assert not result.repaired
    assert result.source == ""
    assert result.schema_errors == []
    assert result.error
    return result.error


# -- where the value is found ----------------------------------------------------------


def test_plain_json_answer_is_used_whole() -> None:
    result = found('\n  {"name": "Ada", "langs": ["en", "fr"], "age": 36}\n')
    assert result.value == {"name": "Ada", "langs": ["en", "fr"], "age": 36}
    assert not result.repaired
    assert result.source == '{"name": "Ada", "langs": ["en", "fr"], "age": 36}'


@pytest.mark.parametrize(
    ("text", "value"),
    [("42", 42), ('"done"', "done"), ("true", True), ("[]", []), ("{}", {})],
)
def test_whole_answer_may_be_any_json_value(text: str, value: object) -> None:
    assert found(text).value == value


def test_json_null_is_found_and_told_apart_from_not_found() -> None:
    result = found("null")
    assert result.value is None


def test_nan_is_not_strict_json() -> None:
    error = not_found("NaN")
    assert "no JSON object or array found" in error


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('{"a": NaN}', "holds NaN"),
        ('{"a": [1, -Infinity]}', "holds -Infinity"),
        ('{"a": 1e999}', "holds the number '1e999' (too large for a float)"),
        ("[1, -2.5e400]", "holds the number '-2.5e400'"),
        ("1e999", "holds the number '1e999'"),
        ('{"a": NaN,}', "holds NaN"),
        ('{"a": 1e999, // why\n}', "holds the number '1e999'"),
        ('Here: {"a": [1, 2], "b": Infinity} done', "the JSON at chars 6-34 holds Infinity"),
        ('{"ok": 1} and {"b": 1e999}', "holds the number '1e999'"),
        ('```json\n{"a": 1E+999}\n```', "holds the number '1E+999'"),
    ],
)
def test_non_finite_numbers_refuse_the_answer(text: str, reason: str) -> None:
    """Issue 18 F8.3: bare NaN/Infinity became strings after repair, 1e999 became inf; the
    answer is refused whole (no smaller span inside it is taken instead), in one line."""
    for partial in (False, True):
        error = not_found(text, partial=partial)
        assert reason in error
        assert "JSON has no NaN or infinite numbers, so the answer is refused" in error
        assert "\n" not in error


def test_finite_numbers_and_words_in_strings_pass() -> None:
    result = found('{"a": "NaN Infinity 1e999", "b": 1.5e300, "c": -0.0, "NaN": 1}')
    assert result.value == {"a": "NaN Infinity 1e999", "b": 1.5e300, "c": -0.0, "NaN": 1}


def test_fenced_json_with_prose_around() -> None:
    text = 'Sure, here it is:\n\n```json\n{"ok": true, "n": 3}\n```\n\nLet me know.'
    result = found(text)
    assert result.value == {"ok": True, "n": 3}
    assert result.source == '{"ok": true, "n": 3}'
    assert not result.repaired


@pytest.mark.parametrize(
    "fence",
    ["```", "~~~", "````", "```JSON", "```jsonc", "  ```json"],
)
def test_fence_variants(fence: str) -> None:
    closer = fence.strip().rstrip("JSONjsonc")
    text = f"Result:\n{fence}\n[1, 2, 3]\n{closer}\nDone."
    assert found(text).value == [1, 2, 3]


def test_fence_with_crlf_line_endings() -> None:
    text = 'Result:\r\n```json\r\n{"a": 1}\r\n```\r\nDone.'
    result = found(text)
    assert result.value == {"a": 1}
    assert result.source == '{"a": 1}'


def test_last_fenced_block_wins_over_an_earlier_example() -> None:
    text = (
        "The format is:\n```json\n"
        '{"name": "<string>", "count": 0}\n```\n'
        "And the answer:\n```json\n"
        '{"name": "widgets", "count": 12}\n```\n'
    )
    assert found(text).value == {"name": "widgets", "count": 12}


def test_last_fenced_block_wins_even_when_it_needs_repair() -> None:
    text = '```json\n{"example": 1}\n```\nReal:\n```json\n{"real": 2,}\n```'
    result = found(text)
    assert result.value == {"real": 2}
    assert result.repaired
    assert result.source == '{"real": 2,}'


def test_fences_in_other_languages_and_without_json_are_skipped() -> None:
    text = (
        '```json\n{"real": 1}\n```\n'
        "How to use it:\n```python\nprint({'x': 2})\n```\n"
        "```\nno json in this block\n```\n"
    )
    assert found(text).value == {"real": 1}


def test_only_the_first_span_of_a_fence_is_used() -> None:
    text = '```json\n{"first": 1}\n{"second": 2}\n```'
    result = found(text)
    assert result.value == {"first": 1}


def test_object_embedded_in_prose() -> None:
    text = 'I checked the repo. The result is {"files": 3, "ok": false}. Anything else?'
    result = found(text)
    assert result.value == {"files": 3, "ok": False}
    assert result.source == '{"files": 3, "ok": false}'
    assert not result.repaired


def test_largest_span_wins_over_citations_and_placeholders() -> None:
    text = 'As [1] says, fill {name} in; the result is {"a": 1, "b": [2, 3]} [2].'
    assert found(text).value == {"a": 1, "b": [2, 3]}


def test_of_equal_spans_the_last_wins() -> None:
    assert found('First {"v": 1} then {"v": 2}.').value == {"v": 2}


def test_array_embedded_in_prose() -> None:
    result = found("The ids are [101, 102, 103].")
    assert result.value == [101, 102, 103]
    assert result.source == "[101, 102, 103]"


def test_nested_strings_with_brackets_and_escaped_quotes() -> None:
    value = {
        "code": 'if (x) { return "}"; } // ]',
        "items": [{"s": "[[["}, {"s": '\\"{'}],
        "empty": "",
    }
    text = f"Here: {json.dumps(value)} -- and a stray }} ] after."
    result = found(text)
    assert result.value == value
    assert result.source == json.dumps(value)


def test_stray_bracket_in_prose_before_the_object() -> None:
    text = 'He said (see [a) and "quoted {text" then {"a": 1, "b": "x"}'
    assert found(text).value == {"a": 1, "b": "x"}


def test_unicode_content() -> None:
    text = 'Voilà : {"名前": "太郎", "emoji": "🎉", "text": "naïve \u2013 “quoted”"} ✓'
    assert found(text).value == {"名前": "太郎", "emoji": "🎉", "text": "naïve \u2013 “quoted”"}


# -- repair --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ('{"a": 1, "b": [1, 2,],}', {"a": 1, "b": [1, 2]}),
        ("[1, 2, 3,]", [1, 2, 3]),
        ("{'a': 'x', 'b': ['y']}", {"a": "x", "b": ["y"]}),
        ("{name: 'Ada', age: 36}", {"name": "Ada", "age": 36}),
        ('{\n  // the name\n  "a": 1, /* why */ "b": 2 # note\n}', {"a": 1, "b": 2}),
        ("{'ok': True, 'none': None}", {"ok": True, "none": None}),
    ],
    ids=["trailing-commas", "array-trailing-comma", "single-quotes", "unquoted-keys",
         "comments", "python-literals"],
)  # fmt: skip
def test_common_damage_is_repaired(text: str, value: object) -> None:
    result = found(f"Here you go:\n{text}\nThanks.")
    assert result.value == value
    assert result.repaired
    assert result.source == text


def test_truncated_object_is_salvaged_with_partial() -> None:
    text = 'Working on it:\n{"done": ["a", "b"], "summary": "half", "todo": [{"id": 1}, {"id'
    result = found(text, partial=True)
    assert result.repaired
    assert result.value["done"] == ["a", "b"]
    assert result.value["summary"] == "half"
    assert result.value["todo"][0] == {"id": 1}
    assert result.source == text[text.index("{") :]


def test_truncated_fenced_block_is_salvaged_with_partial() -> None:
    text = 'Result:\n```json\n{"items": [1, 2, 3], "next": "pag'
    result = found(text, partial=True)
    assert result.value["items"] == [1, 2, 3]
    assert "next" in result.value


def test_truncated_object_without_partial_is_not_found_and_says_why() -> None:
    text = 'Result: {"outer": {"inner": 1}, "list": [1, 2'
    error = not_found(text)
    # The complete {"inner": 1} is a fragment of the cut-off object, never the answer.
    assert "cut off before its closing bracket" in error
    assert "starts at char 8" in error
    assert "partial=True" in error


def test_truncated_answer_without_partial_still_finds_a_complete_earlier_value() -> None:
    text = 'Example: {"a": 1}\nResult: {"b": [1, 2'
    assert found(text).value == {"a": 1}
    salvaged = found(text, partial=True)
    assert salvaged.value == {"b": [1, 2]}
    assert salvaged.repaired


def test_partial_does_not_change_complete_answers() -> None:
    result = found('{"a": 1} and that is all', partial=True)
    assert result.value == {"a": 1}
    assert not result.repaired


def test_cut_off_right_after_the_bracket_salvages_nothing() -> None:
    error = not_found("Result: {\n", partial=True)
    assert "empty dict" in error


def test_deeply_nested_damage_is_not_repaired() -> None:
    error = not_found('{"a": ' * 150 + "1", partial=True)
    assert "nests too deeply (over 100 levels) to repair" in error
    salvaged = found('{"a": ' * 20 + "1", partial=True)
    assert salvaged.repaired


# -- never inventing values from prose -------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "I think {this is fine, really} and [see above].",
        "See [Section 2](https://example.com/s2) for details.",
        "Use the placeholder {name} here.",
        'A Python set like {"x", "y"} is not JSON.',
        "[TODO: write the answer]",
    ],
)
def test_brackets_in_prose_are_not_repaired_into_a_value(text: str) -> None:
    error = not_found(text)
    assert "no valid JSON object or array found" in error
    assert "candidate span" in error


def test_prose_refusal_names_the_word() -> None:
    error = not_found("I think {this is fine, really}.")
    assert "the bare word 'this' is prose" in error


def test_no_json_error_describes_the_answer() -> None:
    text = "I could not complete the task because the repository has no tests. " * 20
    error = not_found(text)
    assert error.startswith(
        "no JSON object or array found in the answer (1,340 chars; starts with: "
        "'I could not complete"
    )
    preview = error.split("starts with: ", 1)[1]
    assert preview.endswith("...')")
    assert len(preview) < 100


def test_no_json_error_escapes_control_characters() -> None:
    error = not_found("\x1b[31mFailed\x1b[0m:\tno\rluck\nat all")
    assert "\\x1b" in error
    assert "\\t" in error
    assert "\\r" in error
    assert not any(ord(c) < 32 for c in error)


@pytest.mark.parametrize(("text", "message"), [("", "empty"), (" \n\t", "whitespace only")])
def test_empty_answer(text: str, message: str) -> None:
    assert message in not_found(text)


def test_at_most_max_candidates_spans_are_tried() -> None:
    bogus = "{this is not json} " * (MAX_CANDIDATES + 5)
    error = not_found(bogus + '{"a": 1}')
    assert f"{MAX_CANDIDATES} candidate spans tried" in error
    # With fewer bogus spans than the bound, the real (smaller) object is reached.
    assert found("{this is not json} " * (MAX_CANDIDATES - 1) + '{"a": 1}').value == {"a": 1}


# -- schema ----------------------------------------------------------------------------

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "age": {"type": "integer", "minimum": 0},
        "tags": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["name", "age"],
}


def test_schema_valid() -> None:
    result = found('{"name": "Ada", "age": 36, "tags": ["x"]}', schema=SCHEMA)
    assert result.value["age"] == 36


def test_schema_accepts_a_read_only_mapping() -> None:
    assert found('{"name": "Ada", "age": 1}', schema=MappingProxyType(SCHEMA)).found


def test_schema_invalid_lists_every_violation_sorted_by_path() -> None:
    tags: list[Any] = ["ok"] * 11
    tags[2] = 2
    tags[10] = 10
    text = json.dumps({"age": -1, "tags": tags})
    result = extract_json(f"Result: {text}", schema=SCHEMA)
    assert result.found
    assert result.value == json.loads(text)
    assert result.schema_errors == [
        "$: 'name' is a required property",
        "$.age: -1 is less than the minimum of 0",
        "$.tags[2]: 2 is not of type 'string'",
        "$.tags[10]: 10 is not of type 'string'",
    ]
    assert result.error == "JSON does not match the schema: $: 'name' is a required property"


def test_schema_paths_quote_keys_that_are_not_identifiers() -> None:
    schema = {"properties": {"a b": {"type": "integer"}}}
    result = extract_json('{"a b": "x"}', schema=schema)
    assert result.schema_errors == ["$[\"a b\"]: 'x' is not of type 'integer'"]


def test_schema_is_not_checked_when_nothing_was_found() -> None:
    result = extract_json("no json", schema=SCHEMA)
    assert not result.found
    assert result.schema_errors == []
    assert result.error is not None
    assert result.error.startswith("no JSON object or array found")


def test_invalid_schema_raises_value_error_even_without_json() -> None:
    with pytest.raises(ValueError, match=r"invalid JSON schema: .*'objekt'"):
        extract_json("no json here", schema={"type": "objekt"})


def test_unresolvable_ref_raises_value_error() -> None:
    schema = {"$ref": "https://example.invalid/schema.json"}
    with pytest.raises(ValueError, match="remote and file references are refused"):
        extract_json('{"a": 1}', schema=schema)


# -- performance guards: twice the input at most ~3x the time (they catch quadratic
# behaviour, not small regressions; speed itself is for benchmarks/) --


def prose(size: int) -> str:
    return ("The quick brown fox jumps over the lazy dog. " * (size // 45 + 1))[:size]


@pytest.mark.slow
def test_20_mb_of_prose_is_linear() -> None:
    result = extract_json(prose(20_000_000) + "\n```\nno json\n```\n")
    assert not result.found
    assert_linear(lambda n: prose(n) + "\n```\nno json\n```\n", extract_json, 4_000_000)


def big_json(items: int = 75_000) -> str:
    value = {"items": [{"id": i, "name": "n" * 20, "tags": ["a", "b"]} for i in range(items)]}
    return json.dumps(value)


@pytest.mark.slow
@pytest.mark.parametrize("wrap", ["{}", "Here you go:\n{}\nDone.", "Here:\n```json\n{}\n```\n"])
def test_5_mb_json_is_linear(wrap: str) -> None:
    text = big_json()
    assert len(text) > 5_000_000
    result = extract_json(wrap.replace("{}", text))
    assert result.found
    assert len(result.value["items"]) == 75_000
    assert_linear(lambda n: wrap.replace("{}", big_json(n)), extract_json, 20_000)


@pytest.mark.slow
@pytest.mark.parametrize(
    "unit",
    ["{", "[", '{"', "[a ", "{x} ", "```\n{x}\n"],
    ids=["braces", "brackets", "brace-quote", "bracket-word", "placeholders", "fences"],
)
@pytest.mark.parametrize("partial", [False, True])
def test_pathological_input_is_not_quadratic(unit: str, partial: bool) -> None:
    assert not extract_json(unit * 100_000, partial=partial).found
    assert_linear(lambda n: unit * n, lambda text: extract_json(text, partial=partial), 50_000)


@pytest.mark.slow
def test_many_unmatched_braces_before_the_answer() -> None:
    assert extract_json("{" * 100_000 + '\n{"a": 1}').value == {"a": 1}
    assert_linear(lambda n: "{" * n + '\n{"a": 1}', extract_json, 50_000)


# -- merge_json_result ---------------------------------------------------------------


def test_merge_object_base_keys_win() -> None:
    base = {"result": "text", "partial": True}
    extraction = found('{"partial": false, "files": 2}')
    merged = merge_json_result(base, extraction)
    assert merged == {"result": "text", "partial": True, "files": 2}
    assert base == {"result": "text", "partial": True}


@pytest.mark.parametrize(("text", "value"), [("[1, 2]", [1, 2]), ("null", None), ("7", 7)])
def test_merge_other_values_go_under_json(text: str, value: object) -> None:
    merged = merge_json_result({"result": text}, found(text))
    assert merged == {"json": value, "result": text}


def test_merge_base_json_key_wins() -> None:
    assert merge_json_result({"json": "mine"}, found("[1]")) == {"json": "mine"}


def test_merge_not_found_returns_a_copy_of_base() -> None:
    base = {"result": "no json", "partial": True}
    merged = merge_json_result(base, extract_json("no json"))
    assert merged == base
    assert merged is not base


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ('{"result": "line1\nline2", "summary": "s"}', {"result": "line1\nline2", "summary": "s"}),
        (
            'Here:\n```json\n{"result": "def f():\n    return 1", "files_created": []}\n```\n',
            {"result": "def f():\n    return 1", "files_created": []},
        ),
        ('Done. {"a": "x\ty\nz"} as asked', {"a": "x\ty\nz"}),
    ],
)
def test_raw_newlines_inside_strings_parse(text: str, value: Any) -> None:
    """Models write multi-line code into a JSON string without escaping its newlines: the
    value is found, marked repaired, with the newlines kept."""
    result = found(text)
    assert result.value == value
    assert result.repaired
