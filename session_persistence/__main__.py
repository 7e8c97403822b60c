"""``python -m session_persistence``: the command-line tool."""

from session_persistence.cli import main

main()
