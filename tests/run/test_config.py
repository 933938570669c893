"""The user config file (``_run/_config.py``): where it is found, its sections, every refusal
as one line naming the file, the line and the key, and what wins over what. Real files in
temporary folders."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cc_executor import ConfigError, UserConfig
from cc_executor._run._config import CONFIG_ENV, config_path


def write(folder: Path, text: str, name: str = "config.toml") -> Path:
    path = folder / name
    path.write_text(text)
    return path


def refused(path: Path) -> str:
    with pytest.raises(ConfigError) as caught:
        UserConfig.load(path)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_the_default_file_is_config_toml_in_the_data_folder(
    cc_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(CONFIG_ENV, raising=False)
    assert config_path() == (str(cc_home / "config.toml"), False)
    # None there: no config, every section empty.
    empty = UserConfig.load()
    assert (empty.path, empty.reserve_usd, empty.defaults) == (None, {}, {})
    cc_home.mkdir()
    write(cc_home, '[reserve_usd]\n"*" = 0.5\n')
    assert UserConfig.load().reserve_usd == {"*": 0.5}
    assert UserConfig.load().path == str(cc_home / "config.toml")


def test_a_named_file_must_exist_and_dev_null_is_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = write(tmp_path, "[reserve_usd]\nopus = 2\n", "other.toml")
    monkeypatch.setenv(CONFIG_ENV, str(other))
    assert UserConfig.load().reserve_usd == {"opus": 2.0}
    monkeypatch.setenv(CONFIG_ENV, str(tmp_path / "missing.toml"))
    with pytest.raises(ConfigError, match=r"missing\.toml: no such config file$"):
        UserConfig.load()
    monkeypatch.setenv(CONFIG_ENV, os.devnull)
    assert UserConfig.load().reserve_usd == {}


def test_both_sections_are_read_and_checked(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        # my defaults
        [reserve_usd]
        "*" = 0.25
        opus = 2

        [defaults]
        model = "sonnet"
        max_turns = 12
        timeout = 600
        memory_max = "2G"
        allowed_tools = "Read, Edit"
        add_dirs = ["shared", "/abs"]
        env = {LANG = "C.UTF-8"}
        json_schema = {type = "object"}
        """.replace("        ", ""),
    )
    config = UserConfig.load(path)
    assert config.reserve_usd == {"*": 0.25, "opus": 2.0}
    assert config.defaults == {
        "model": "sonnet",
        "max_turns": 12,
        "timeout": 600,
        "memory_max": "2G",
        "allowed_tools": ["Read", "Edit"],
        # Relative paths point from the file's folder, wherever the command runs.
        "add_dirs": [str(tmp_path / "shared"), "/abs"],
        "env": {"LANG": "C.UTF-8"},
        "json_schema": {"type": "object"},
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[defaults]\nmodel = 'x'\nmax_turns = 'ten'\n",
         ":3: [defaults] max_turns: must be an integer, got 'ten'"),
        ("[defaults]\n\n  grace = -1\n", ":3: [defaults] grace: must be >= 0, got -1"),
        ("[defaults]\ntimeout = 0\n", ":2: [defaults] timeout: must be positive, got 0"),
        # Text no process can be given is named at its line, not later as a flag's error.
        ("[defaults]\nmodel = ''\n",
         ":2: [defaults] model: is empty: give a value, or leave the option out"),
        ('[defaults]\nmodel = "a\\u0000b"\n', ":2: [defaults] model: contains a NUL byte"),
        ("[defaults]\nmemory_max = 'lots'\n",
         ":2: [defaults] memory_max: must be a size in bytes (512M, 2G), got 'lots'"),
        ("[defaults]\nmax_turn = 3\n",
         ":2: [defaults] max_turn: unknown run option (did you mean max_turns?)"),
        ("[defaults]\njson_schema = 'schema.json'\n",
         ":2: [defaults] json_schema: expected a table (the JSON Schema itself)"),
        ("[reserve_usd]\nopus = 'two'\n",
         ":2: [reserve_usd] opus: expected USD (a number), got 'two'"),
        ("[reserve_usd]\nopus = 0\n", ":2: [reserve_usd] opus: expected USD > 0, got 0"),
        ("[reserve_usd]\nopus = inf\n", ":2: [reserve_usd] opus: expected USD > 0, got inf"),
        ("[reserve_usd]\nopus = true\n",
         ":2: [reserve_usd] opus: expected USD (a number), got True"),
        ("\n[reserve]\nopus = 1\n",
         ":2: [reserve]: unknown section (known: [reserve_usd], [defaults])"),
        ("reserve_usd = 1\n", ": [reserve_usd]: expected a [reserve_usd] table"),
        # A key written otherwise than `key = value` in its section: named without a line.
        ("defaults.max_turns = 'x'\n", ": [defaults] max_turns: must be an integer, got 'x'"),
    ],
)  # fmt: skip
def test_a_bad_value_is_one_line_naming_file_line_and_key(
    tmp_path: Path, text: str, expected: str
) -> None:
    path = write(tmp_path, text)
    assert refused(path) == f"{path}{expected}"


def test_not_toml_and_not_utf8_are_one_line(tmp_path: Path) -> None:
    path = write(tmp_path, "[defaults]\nmodel = \n")
    message = refused(path)
    assert message.startswith(f"{path}: not valid TOML: ")
    assert "line 2" in message
    path.write_bytes(b"[defaults]\nmodel = '\xff'\n")
    assert refused(path).startswith(f"{path}: not UTF-8 text")
    path.chmod(0)
    if os.geteuid() != 0:  # root reads it anyway
        assert refused(path) == f"{path}: cannot read the config file: Permission denied"


@pytest.mark.parametrize(
    ("key", "value", "why"),
    [
        ("fleet", "'redis://x'", "a run is sent to a fleet only by --fleet"),
        ("queue", "'q'", "a fleet's queue is chosen on the command line"),
        ("allow_dir", "['/']", "--allow-dir widens what a server's callers may reach"),
        ("token", "'s3cret'", "tokens are never read from the config file"),
        ("agent_path", "'/bin/sh'", "it chooses what executes or where files go (a server-only"),
        ("claude_path", "'/bin/sh'", "it chooses what executes or where files go (a server-only"),
        ("extra_args", "['--x']", "it chooses what executes or where files go (a server-only"),
        ("base_url", "'http://x'", "it chooses what executes or where files go (a server-only"),
        ("permission_policy", "'p.yaml'", "it chooses what executes or where files go"),
        ("use_login", "true", "it chooses what executes or where files go (a server-only"),
        ("record", "false", "it chooses what executes or where files go (a server-only"),
        ("resume", "'abc'", "it is chosen for one run"),
        ("session_id", "'abc'", "it is chosen for one run"),
    ],
)
def test_what_would_widen_a_run_or_send_it_away_is_refused(
    tmp_path: Path, key: str, value: str, why: str
) -> None:
    path = write(tmp_path, f"[defaults]\nmodel = 'sonnet'\n{key} = {value}\n")
    message = refused(path)
    assert message.startswith(f"{path}:3: [defaults] {key}: not allowed here: "), message
    assert why in message


def test_explicit_values_win_over_the_file() -> None:
    config = UserConfig(
        "c.toml",
        reserve_usd={"*": 0.5, "opus": 2.0},
        defaults={"model": "sonnet", "max_turns": 3, "env": {"A": "1", "B": "2"}},
    )
    assert config.run_options(max_turns=9, env={"B": "x"}) == {
        "model": "sonnet",
        "max_turns": 9,
        "env": {"A": "1", "B": "x"},
    }
    assert config.run_options() == config.defaults
    assert config.reservations({"opus": 1.0}) == {"*": 0.5, "opus": 1.0}
    assert config.reservations() == {"*": 0.5, "opus": 2.0}


def test_the_consoles_copy_follows_the_file_and_keeps_nothing_refused(
    cc_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import marshal

    from cc_executor._run._config import CACHE_NAME, quick_defaults

    monkeypatch.delenv(CONFIG_ENV, raising=False)
    assert quick_defaults() == {}
    cc_home.mkdir()
    path = write(cc_home, "[defaults]\nmax_turns = 3\n")
    assert quick_defaults() == {"max_turns": 3}
    cache = cc_home / CACHE_NAME
    assert cache.stat().st_mode & 0o777 == 0o600
    key, kept = marshal.loads(cache.read_bytes())
    assert kept == {"max_turns": 3}
    # An edit is seen at once (another size, inode or time), and a bad file is None.
    path.write_text("[defaults]\nmax_turns = 12\n")
    assert quick_defaults() == {"max_turns": 12}
    path.write_text("[defaults]\nmax_turns = 'x'\n")
    assert quick_defaults() is None
    # A copy holding what the file may not set is not believed: the file is read again.
    path.write_text("[defaults]\nmax_turns = 4\n")
    assert quick_defaults() == {"max_turns": 4}
    key, _ = marshal.loads(cache.read_bytes())
    cache.write_bytes(marshal.dumps((key, {"agent_path": "/bin/sh"})))
    assert quick_defaults() == {"max_turns": 4}
    cache.write_bytes(b"garbage")
    assert quick_defaults() == {"max_turns": 4}
    monkeypatch.setenv(CONFIG_ENV, str(cc_home / "missing.toml"))
    assert quick_defaults() is None
