"""Instances that always validate: what constrained decoding guarantees (strict structured output).

``InstanceGenerator`` satisfies a ``pattern`` by trying plausible strings; here a string no guess matches is
sampled from the pattern itself, and an instance is drawn again (same ``rng``) until the schema accepts it.
"""

from __future__ import annotations

import importlib
import random
import re
import string
from collections.abc import Sequence
from typing import Any

from groq_emulator.schema_instances import InstanceGenerator, validator_for

_parser: Any = importlib.import_module("re._parser")  # the stdlib's regex parser (sre_parse is deprecated)
_ALPHABET = string.ascii_letters + string.digits + "_- .:/@"
_OPEN_REPEAT = 3  # how far past its minimum an unbounded repeat may go


class UnsupportedPattern(ValueError):
    """The pattern uses a construct that cannot be sampled (back-references, look-around)."""


def _category(name: Any, ch: str) -> bool:
    checks = {
        _parser.CATEGORY_DIGIT: ch.isdigit(),
        _parser.CATEGORY_NOT_DIGIT: not ch.isdigit(),
        _parser.CATEGORY_SPACE: ch.isspace(),
        _parser.CATEGORY_NOT_SPACE: not ch.isspace(),
        _parser.CATEGORY_WORD: ch.isalnum() or ch == "_",
        _parser.CATEGORY_NOT_WORD: not (ch.isalnum() or ch == "_"),
    }
    return checks.get(name, False)


def _in_set(items: list[tuple[Any, Any]], ch: str) -> bool:
    negate = False
    found = False
    for op, av in items:
        if op == _parser.NEGATE:
            negate = True
        elif op == _parser.LITERAL:
            found = found or ord(ch) == av
        elif op == _parser.RANGE:
            found = found or av[0] <= ord(ch) <= av[1]
        elif op == _parser.CATEGORY:
            found = found or _category(av, ch)
    return found != negate


def _pick(rng: random.Random, test: Any) -> str:
    options = [ch for ch in _ALPHABET if test(ch)]
    if not options:
        raise UnsupportedPattern("a character class with no printable ASCII member")
    return rng.choice(options)


def _emit(items: Any, rng: random.Random, out: list[str]) -> None:
    for op, av in items:
        if op == _parser.LITERAL:
            out.append(chr(av))
        elif op == _parser.NOT_LITERAL:
            out.append(_pick(rng, lambda ch, av=av: ord(ch) != av))
        elif op == _parser.ANY:
            out.append(_pick(rng, str.isalnum))
        elif op == _parser.IN:
            out.append(_pick(rng, lambda ch, av=av: _in_set(av, ch)))
        elif op == _parser.CATEGORY:
            out.append(_pick(rng, lambda ch, av=av: _category(av, ch)))
        elif op in (_parser.MAX_REPEAT, _parser.MIN_REPEAT, _parser.POSSESSIVE_REPEAT):
            low, high, sub = av
            top = low + _OPEN_REPEAT if high == _parser.MAXREPEAT else min(high, low + _OPEN_REPEAT)
            for _ in range(rng.randint(low, top)):
                _emit(sub, rng, out)
        elif op in (_parser.SUBPATTERN, _parser.ATOMIC_GROUP):
            _emit(av[-1], rng, out)
        elif op == _parser.BRANCH:
            _emit(rng.choice(av[1]), rng, out)
        elif op == _parser.AT:
            continue
        else:
            raise UnsupportedPattern(f"cannot sample {op}")


def sample_pattern(pattern: str, rng: random.Random) -> str:
    """A string that ``pattern`` matches (anchors are honoured by construction)."""
    out: list[str] = []
    _emit(_parser.parse(pattern), rng, out)
    return "".join(out)


class ConformingGenerator(InstanceGenerator):
    def _matching(self, pattern: str, value: str) -> str:
        guess = super()._matching(pattern, value)
        try:
            if re.search(pattern, guess):
                return guess
            sampled = sample_pattern(pattern, self.rng)
        except (re.error, UnsupportedPattern):
            return guess
        return sampled if re.search(pattern, sampled) else guess


def conforming_instance(schema: Any, rng: random.Random, words: Sequence[str] = (), tries: int = 12) -> Any:
    """An instance of ``schema`` that validates; ValueError when none is found (a schema nothing satisfies)."""
    validator = validator_for(schema)
    for _ in range(tries):
        value = ConformingGenerator(schema, rng, words).generate()
        if validator.is_valid(value):
            return value
    raise ValueError("no instance of the schema was found")
