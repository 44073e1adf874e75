"""Warnings and errors raised by skdpgen."""

from __future__ import annotations


class PrivacyLeakWarning(UserWarning):
    """Something computed from the private rows reaches the output without privacy budget.

    Raised only where the user explicitly opted in to such a leak (for instance
    :meth:`skdpgen.Schema.infer`, which reads bounds and categories straight from the data).
    """


class PrivacyBudgetExceeded(RuntimeError):
    """A release would take a :class:`~skdpgen.PrivacyLedger` past its ``max_epsilon``/``max_delta``.

    Raised *before* anything is released, so the ledger and the data holder lose nothing.
    """
