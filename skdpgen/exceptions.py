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


class LedgerCopyWarning(UserWarning):
    """A :class:`~skdpgen.PrivacyLedger` was pickled: the unpickled ledger is a separate copy.

    What the copy records does not come back to the original, and the original's ``max_epsilon``
    does not bound what the copy allows.  This is what happens to a shared ledger in
    ``GridSearchCV(n_jobs>1)`` or ``cross_val_score(n_jobs>1)`` with joblib's default process
    backend (loky): the workers' fits are not recorded.  Use ``n_jobs=1`` or
    ``joblib.parallel_backend("threading")``.  Saving a fitted model (``joblib.dump``) pickles its
    ledger too; silence the warning there with ``warnings.simplefilter("ignore", LedgerCopyWarning)``.
    """
