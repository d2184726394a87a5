"""The gateway's own records that are not jobs: failed sign-ins, shared by every process."""

from __future__ import annotations

from django.db import models


class SignInFailure(models.Model):
    """Failed sign-ins of one user name or one client address in the current window.

    In the database, not in each process: with N web processes a per-process count gave an
    attacker N times the budget (docs/security.md). The key is a digest, so a user name or an
    address of any length or alphabet fits one indexed column on every database.
    """

    key = models.CharField(max_length=64, primary_key=True)
    window_started = models.FloatField(help_text="Epoch seconds when the window began.")
    count = models.PositiveIntegerField(default=0)

    class Meta:
        indexes = [models.Index(fields=["window_started"], name="signin_window_idx")]

    def __str__(self) -> str:
        return f"{self.key[:8]}…: {self.count}"
