"""The exceptions and warnings nettrim raises.

Bad input raises the built-in ``ValueError`` or ``TypeError`` with a message that names the
argument and says what was expected.  What is particular to nettrim derives from
:class:`NettrimError`, so that ``except nettrim.NettrimError`` catches all of it.
"""
from __future__ import annotations


class NettrimError(Exception):
    """Base of nettrim's own errors."""


class InvalidArgument(NettrimError, ValueError):
    """An argument (or file, or option) with a value nettrim cannot use; the message names it."""


class InvalidArgumentType(NettrimError, TypeError):
    """An argument of a type nettrim cannot use; the message names it."""


class ModelFileError(InvalidArgument):
    """A model or data file that is missing, unreadable or of an unsupported kind; the message names it."""


class UnsupportedModelError(InvalidArgument):
    """The model holds a layer or connection Net-Trim cannot prune."""


class NumericalError(NettrimError, ArithmeticError):
    """A solve's iterates became non-finite: nothing it computed can be trusted.

    Raised rather than returned, so that a NaN matrix can never pass for a pruned layer."""


class ConvergenceWarning(UserWarning):
    """The solve stopped at its iteration or time limit before meeting its tolerances."""


class TargetWarning(UserWarning):
    """A layer's share of the sparsity target was met another way than asked, or missed: the
    message says what happened and what nettrim did (the report's ``notes`` keep it).  Nothing
    failed to converge: that is a :class:`ConvergenceWarning`."""


class NumericalWarning(UserWarning):
    """A float32 solve went non-finite and was solved again in float64 (the result says so)."""
