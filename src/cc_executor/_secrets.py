"""Passwords from the environment: a variable, or a file another variable names.

Never from the command line, where ``ps`` shows them to every account; the fleet's URL and
the PostgreSQL history's URL both read theirs here.
"""

from __future__ import annotations

import os


def env_secret(var: str, file_var: str) -> str | None:
    """``$var``, else the first line of the file ``$file_var`` names, else None.

    Raises ValueError, naming ``file_var`` and the file, when that file cannot be read.
    """
    value = os.environ.get(var)
    if value:
        return value
    path = os.environ.get(file_var)
    if not path:
        return None
    try:
        with open(path, encoding="utf-8") as file:
            line = file.readline().rstrip("\r\n")
    except OSError as exc:
        raise ValueError(f"{file_var}: cannot read {path}: {exc.strerror}") from None
    return line or None
