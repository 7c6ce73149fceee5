"""``python -m durably``: the ``durably`` command."""

from durably.cli import main

main()
