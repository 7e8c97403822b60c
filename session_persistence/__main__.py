"""``python -m session_persistence``: the command-line tool."""

import sys

try:
    from session_persistence.cli import main
except ImportError as error:  # the cli extra is not installed
    sys.stderr.write(
        f"error: the command-line tool needs the 'cli' extra ({error}); install it with "
        "pip install 'session-persistence[cli]'\n"
    )
    raise SystemExit(2) from None

main()
