"""One short error for a user's mistake on the command line: the reason first, no traceback.

A bad override, a missing file or a bad value ends the command with ``sanawm <command>: error: <reason>``
and exit status 2; ``HYDRA_FULL_ERROR=1`` lets the exception through with its full traceback.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

# The errors our code raises for bad input (each names the argument or file and what it accepts).
USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, FileNotFoundError, FileExistsError, NotADirectoryError)


def _one_line(error: BaseException) -> str:
    return " ".join(line.strip() for line in str(error).splitlines() if line.strip())


def reason(error: BaseException) -> str:
    """The message of ``error``, with the cause of a Hydra composition error first (Hydra's own
    message says only which override failed)."""
    from hydra.errors import ConfigCompositionException

    if isinstance(error, ConfigCompositionException) and error.__cause__ is not None:
        cause = str(error.__cause__).splitlines()[0].strip()
        return f"{cause} ({_one_line(error)})"
    return _one_line(error)


def run_reporting(command: str, fn: Callable[[], object]) -> int:
    """Run ``fn``; a user error prints one line to stderr and gives exit status 2."""
    from hydra.errors import ConfigCompositionException

    try:
        fn()
    except (ConfigCompositionException, *USER_ERRORS) as error:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        print(f"sanawm {command}: error: {reason(error)}\n(HYDRA_FULL_ERROR=1 shows the full traceback)", file=sys.stderr)
        return 2
    return 0
