"""``python -m durably.cli``: the ``durably`` command."""

from durably.cli import main

main()
