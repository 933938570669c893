"""One tree of exceptions under ``cc_executor.CCExecutorError``, the builtin bases kept, and
the renamed classes still reachable under their old names with a DeprecationWarning."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

import cc_executor
from cc_executor import _errors
from cc_executor._agents._claude import locate_claude
from cc_executor._agents._types import RunStatus

#: Exceptions defined outside ``_errors.py``: control-flow signals caught beside their one
#: user, listed in ``_errors.py``'s docstring.
INTERNAL = {
    "cc_executor._agents._bigjson.NotHandled",
    "cc_executor._cli._fleet._Exit",
    "cc_executor._cli._doctor_checks._Failed",
    "cc_executor._run._jsonmode._NonFinite",
    "cc_executor._service._ws._RpcError",
    "cc_executor.notify._inbox._Rejected",
    "cc_executor.tasks._fields.BadValue",
}
#: Internal signals of modules that run as standalone scripts importing only the standard
#: library, so cannot derive from the base (``_errors.py``'s docstring says why).
STANDALONE = {"cc_executor._run._permission_server._Refused"}


def package_modules() -> list[ModuleType]:
    """Every module of the package (``__main__`` aside: importing it runs the CLI)."""
    names = [
        info.name
        for info in pkgutil.walk_packages(cc_executor.__path__, "cc_executor.")
        if not info.name.endswith(".__main__")
    ]
    return [cc_executor, *(importlib.import_module(name) for name in names)]


def defined_exceptions() -> dict[str, type[BaseException]]:
    """Each exception class the package defines, by ``module.qualname``."""
    found: dict[str, type[BaseException]] = {}
    for module in package_modules():
        for obj in vars(module).values():
            if (
                inspect.isclass(obj)
                and issubclass(obj, BaseException)
                and obj.__module__ == module.__name__
            ):
                found[f"{obj.__module__}.{obj.__qualname__}"] = obj
    return found


def test_every_exception_of_the_package_derives_from_the_base() -> None:
    found = defined_exceptions()
    assert set(found) >= INTERNAL  # the walk reached the subpackages
    base = _errors.CCExecutorError
    outside = [name for name, cls in found.items() if not issubclass(cls, base)]
    assert sorted(outside) == sorted(STANDALONE)


def test_only_internal_signals_are_defined_outside_the_errors_module() -> None:
    names = defined_exceptions()
    assert {name for name in names if not name.startswith("cc_executor._errors.")} == (
        INTERNAL | STANDALONE
    )


def test_the_base_is_exported_at_the_top_level() -> None:
    from cc_executor import AgentNotFound, CCExecutorError, ClaudeNotFound

    assert CCExecutorError is _errors.CCExecutorError
    assert issubclass(CCExecutorError, Exception)
    assert issubclass(ClaudeNotFound, AgentNotFound)
    assert {"CCExecutorError", "AgentNotFound", "ClaudeNotFound"} <= set(cc_executor.__all__)


@pytest.mark.parametrize(
    ("name", "builtin"),
    [
        ("TaskListError", ValueError),
        ("TaskListNotFound", LookupError),
        ("TaskListBusy", RuntimeError),
        ("ScriptError", ValueError),
        ("CCExecuteError", RuntimeError),
        ("AgentNotFound", LookupError),
        ("ClaudeNotFound", LookupError),
    ],
)
def test_builtin_bases_are_kept(name: str, builtin: type[Exception]) -> None:
    cls = getattr(_errors, name)
    assert issubclass(cls, _errors.CCExecutorError)
    assert issubclass(cls, builtin)


@pytest.mark.parametrize(
    ("module", "name"),
    [
        ("cc_executor._engine._spawn", "SpawnError"),
        ("cc_executor._agents._claude", "ClaudeNotFound"),
        ("cc_executor._agents._claude._locate", "ClaudeNotFound"),
        ("cc_executor._store", "HistoryError"),
        ("cc_executor._store._base", "HistoryError"),
        ("cc_executor.tasks", "TaskListError"),
        ("cc_executor.tasks", "TaskListNotFound"),
        ("cc_executor.tasks", "TaskListBusy"),
        ("cc_executor.tasks._errors", "TaskListError"),
        ("cc_executor.tasks._template", "TemplateProblem"),
        ("cc_executor.notify", "NotifyError"),
        ("cc_executor.notify", "GitStateError"),
        ("cc_executor.notify", "RunEvidenceError"),
        ("cc_executor.notify", "InvalidMessage"),
        ("cc_executor.notify", "DeliveryError"),
        ("cc_executor.notify", "EntryNotFound"),
        ("cc_executor._service._manager", "ServiceError"),
        ("cc_executor._service._manager", "InvalidRequest"),
        ("cc_executor._service._manager", "NotFound"),
        ("cc_executor._service._manager", "Forbidden"),
        ("cc_executor._service._manager", "Conflict"),
        ("cc_executor._service._manager", "QueueFull"),
        ("cc_executor._service._manager", "Unavailable"),
        ("cc_executor._service._mcp", "ToolFailure"),
        ("cc_executor.testing", "ScriptError"),
        ("cc_executor.client.cc_execute", "CCExecuteError"),
    ],
)
def test_old_import_paths_give_the_same_classes(module: str, name: str) -> None:
    assert getattr(importlib.import_module(module), name) is getattr(_errors, name)


@pytest.mark.parametrize(
    ("module", "old", "new"),
    [
        ("cc_executor.tasks", "Problem", "TaskListProblem"),
        ("cc_executor.tasks._errors", "Problem", "TaskListProblem"),
        ("cc_executor.notify", "Problem", "InboxProblem"),
        ("cc_executor.notify._inbox", "Problem", "InboxProblem"),
        ("cc_executor.testing", "HttpError", "HttpErrorReply"),
        ("cc_executor.testing._script", "HttpError", "HttpErrorReply"),
    ],
)
def test_renamed_classes_warn_under_their_old_names(module: str, old: str, new: str) -> None:
    mod = importlib.import_module(module)
    with pytest.warns(DeprecationWarning, match=rf"{module}\.{old} is deprecated; use .*{new}"):
        value = getattr(mod, old)
    assert value is getattr(mod, new)
    assert old not in getattr(mod, "__all__", ())  # a star import must not warn


def test_importing_an_old_name_warns_once_at_the_importing_line() -> None:
    from cc_executor.tasks import TaskListProblem

    with pytest.warns(DeprecationWarning, match="tasks.Problem is deprecated") as record:
        from cc_executor.tasks import Problem
    assert Problem is TaskListProblem
    assert [w.filename for w in record] == [__file__]


def test_unknown_names_still_raise_attribute_error() -> None:
    import cc_executor.tasks
    import cc_executor.testing

    with pytest.raises(AttributeError):
        cc_executor.tasks.Nothing  # noqa: B018
    with pytest.raises(AttributeError):
        cc_executor.testing.Nothing  # noqa: B018


def test_a_missing_cli_raises_from_locate_and_is_a_result_from_run(tmp_path: Path) -> None:
    missing = str(tmp_path / "no-claude")
    with pytest.raises(LookupError) as caught:
        locate_claude(missing)
    assert isinstance(caught.value, cc_executor.ClaudeNotFound)
    assert isinstance(caught.value, cc_executor.AgentNotFound)
    result = cc_executor.run_sync("x", claude_path=missing)
    assert result.status is RunStatus.SPAWN_FAILED
    assert result.error == str(caught.value)


def test_the_errors_module_imports_nothing() -> None:
    """The console's early start imports it first: it must not pull in anything."""
    code = (
        "import sys, cc_executor\n"
        "before = set(sys.modules)\n"
        "import cc_executor._errors\n"
        "print(' '.join(sorted(set(sys.modules) - before)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-I", "-c", code], capture_output=True, text=True, check=True
    )
    assert set(done.stdout.split()) <= {"__future__", "cc_executor._errors"}
