"""Running the ``durably`` command line in this process, as a shell would see it."""

from __future__ import annotations

import contextlib
import io
import json
import re
import sys
from dataclasses import dataclass
from typing import Any

from durably.cli import main

ANSI = re.compile(r"\x1b\[")


@dataclass
class Done:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)

    def lines(self) -> list[Any]:
        return [json.loads(line) for line in self.out.splitlines()]

    def __str__(self) -> str:
        return f"exit {self.code}\n--- stdout ---\n{self.out}\n--- stderr ---\n{self.err}"


def cli(*args: str, stdin: str = "") -> Done:
    """``durably ARGS...``: its exit code, stdout and stderr (stdout is not a terminal)."""
    out, err = io.StringIO(), io.StringIO()
    code = 0
    old_stdin = sys.stdin
    sys.stdin = io.StringIO(stdin)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            main(list(args))
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    finally:
        sys.stdin = old_stdin
    done = Done(code, out.getvalue(), err.getvalue())
    assert "Traceback" not in done.err, str(done)
    return done
