"""Which recorded positions a retry of a failed run drops, so its failed steps run again.

A run that failed because a step failed has that step's failure in its journal;
replay would raise it again. A retry drops the failed entries of the run's last
block of steps: one failed step at the end, or the failed branches of a
``map``/``gather`` whose other branches completed after it. Earlier failures the
workflow caught and handled stay, as does everything else. A run whose
compensations already ran is refused: re-running the failed step after its
predecessors' work was undone would act on state that no longer exists.
"""

from __future__ import annotations

from collections.abc import Sequence

from durably.errors import InvalidRunState
from durably.records import EntryStatus, JournalEntry, RunRow

#: The call site recorded for the steps that undo a run's work (see compensation).
COMPENSATION_SITE = "compensation"


def positions_to_drop(run: RunRow, journal: Sequence[JournalEntry]) -> list[int]:
    """The journal positions a retry of ``run`` removes; InvalidRunState if it cannot."""
    undone = [e for e in journal if e.call_site == COMPENSATION_SITE]
    if undone:
        raise InvalidRunState(
            f"run {run.run_id} cannot be retried: its compensations already ran "
            f"({', '.join(repr(e.name) for e in undone)}), undoing the work the failed "
            "step would build on; start a new run instead"
        )
    if run.error is None or run.error.type != "StepFailed":
        return []  # it failed in workflow code (or by the engine): replay from the top
    block: list[JournalEntry] = []
    for entry in reversed(journal):
        if entry.kind != "step":
            break
        block.append(entry)
    return sorted(e.seq for e in block if e.status is EntryStatus.FAILED)
