"""Declared parameter rules, checked together when ``fit`` starts."""

import difflib
import numbers
import os

__all__ = ["Rule", "check_parameters"]


class Rule:
    """One allowed-values rule: a predicate and the words that describe it."""

    def __init__(self, test, allowed, choices=None):
        self.test = test
        self.allowed = allowed
        self.choices = choices

    def __call__(self, value):
        try:
            return bool(self.test(value))
        except (TypeError, ValueError):
            return False


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def integer(low, high=None):
    """An int in ``[low, high]``."""
    text = f"an int >= {low}" if high is None else f"an int in [{low}, {high}]"
    return Rule(lambda v: _is_int(v) and v >= low and (high is None or v <= high), text)


def real(low, high=None, *, low_open=False, high_open=False):
    """A float in the given interval."""
    left, right = "(" if low_open else "[", ")" if high_open else "]"
    text = f"a float in {left}{low}, {'inf' if high is None else high}{right}"

    def test(v):
        if not _is_real(v) or v != v:
            return False
        above = v > low if low_open else v >= low
        below = high is None or (v < high if high_open else v <= high)
        return above and below

    return Rule(test, text)


def one_of(*choices):
    """One of the listed values."""
    return Rule(
        lambda v: isinstance(v, str) and v in choices,
        "one of " + ", ".join(repr(c) for c in choices),
        choices,
    )


def boolean():
    """True or False."""
    return Rule(lambda v: isinstance(v, bool) or v in (0, 1), "True or False")


def optional(rule):
    """``None`` or what ``rule`` allows."""
    return Rule(lambda v: v is None or rule(v), f"None or {rule.allowed}", rule.choices)


def string():
    """A non-empty string."""
    return Rule(lambda v: isinstance(v, str) and v != "", "a non-empty str")


def path_like():
    """A str or os.PathLike."""
    return Rule(lambda v: isinstance(v, (str, os.PathLike)), "a str or os.PathLike")


def custom(test, allowed):
    """Any predicate, described by ``allowed``."""
    return Rule(test, allowed)


def check_parameters(estimator, rules):
    """Check every parameter of ``estimator`` against ``rules`` at once.

    Raises
    ------
    ValueError
        Listing every bad parameter: what is allowed, what was given and, for a
        misspelt choice, the closest allowed value.
    """
    problems = []
    for name, rule in rules.items():
        value = getattr(estimator, name)
        if rule(value):
            continue
        line = f"  - {name}: allowed {rule.allowed}; got {value!r}."
        if rule.choices and isinstance(value, str):
            close = difflib.get_close_matches(value, list(rule.choices), n=1)
            if close:
                line += f" Did you mean {close[0]!r}?"
        problems.append(line)
    if problems:
        noun = "parameter" if len(problems) == 1 else "parameters"
        raise ValueError(
            f"Invalid {noun} for {type(estimator).__name__}:\n"
            + "\n".join(problems)
            + "\nSet them with set_params(...) or in the constructor."
        )
