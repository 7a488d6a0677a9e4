"""Images seen over a whole trial, progress ticks and the evenly spaced reports (every family's loop)."""
from __future__ import annotations

from genas.spaces.base import TrialContext


class Progress:
    """Counts what a trial has trained on (images, or steps for a family that has no images).

    ``step(n)`` ticks the progress display and says when one of ``reports`` evenly spaced
    reports is due; ``done`` is the count so far, the step axis of the trial's metrics.
    """

    def __init__(self, ctx: TrialContext, total: int, reports: int) -> None:
        self.ctx, self.total, self.done = ctx, total, 0
        self.report_at = [round(total * (i + 1) / reports) for i in range(reports)] if reports > 0 else []

    def step(self, n: int) -> bool:
        """Count ``n`` images; True when a report is due."""
        self.done += n
        self.ctx.advance(min(self.done, self.total), self.total)
        due = False
        while self.report_at and self.done >= self.report_at[0]:
            self.report_at.pop(0)
            due = True
        return due
