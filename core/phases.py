"""How a phase ends other than by returning: the two exceptions the runner (``operations.runner``)
turns into a failed or cancelled phase.

They live at the bottom of the layers so that the packages a phase calls (the Kubernetes API
package ``kube/``, remote execution) can end a phase with a message the user acts on without
importing ``operations``.
"""

from __future__ import annotations


class PhaseError(Exception):
    """A phase failed for a reason the user can act on; the message is shown as is and the
    hint ("what to do next") prominently beside it."""

    def __init__(self, message: str, *, hint: str = "", exit_status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.exit_status = exit_status


class OperationCancelled(Exception):
    """Raised inside a phase (``ctx.check_cancelled()``) once the user cancelled the operation."""
