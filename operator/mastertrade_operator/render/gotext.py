"""Text exactly as Helm's template functions print it (Go's fmt, go-yaml and encoding/json).

The config checksum annotation is a hash of text that Helm produced with `toYaml` and `toJson`;
reproducing that hash means reproducing Go's formatting of numbers, YAML and JSON byte for byte.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from decimal import Decimal
from typing import Any

import yaml
from yaml.emitter import Emitter
from yaml.nodes import ScalarNode
from yaml.resolver import Resolver

Scalar = str | int | float | bool

# Plain scalars that go-yaml v2 resolves to something other than a string, beyond what PyYAML's
# YAML 1.1 resolver already knows: short booleans, floats without a dot, base 60, timestamps.
_GO_NON_STRING = re.compile(
    r"""^(?:
        [yYnN]
      | [-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?
      | [-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?
      | [0-9]{4}-[0-9]{1,2}-[0-9]{1,2}(?:[Tt\ ].*)?
      | [-+]?0b[01_]+
    )$""",
    re.VERBOSE,
)
_STR_TAG = "tag:yaml.org,2002:str"
_RESOLVER = Resolver()


def _special_float(value: float) -> str | None:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return "0" if value == 0 else None


def go_float(value: float) -> str:
    """`fmt.Sprint(float64)`: shortest digits, exponent form below 1e-4 and from 1e6."""
    special = _special_float(value)
    if special is not None:
        return special
    sign, digit_tuple, exponent = Decimal(repr(value)).as_tuple()
    assert isinstance(exponent, int)
    digits = "".join(map(str, digit_tuple)).rstrip("0")
    point = len(digit_tuple) + exponent  # position of the decimal point in `digits`
    prefix = "-" if sign else ""
    exp = point - 1
    if exp < -4 or exp >= 6:
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        text = f"{mantissa}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    elif point <= 0:
        text = f"0.{'0' * -point}{digits}"
    elif point >= len(digits):
        text = digits + "0" * (point - len(digits))
    else:
        text = f"{digits[:point]}.{digits[point:]}"
    return prefix + text


def env_string(value: Scalar) -> str:
    """`mastertrade.envString`: whole floats as integers, booleans lower-case."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else go_float(value)
    return str(value)


def _resolves_to_non_string(text: str) -> bool:
    pyyaml_tag = _RESOLVER.resolve(ScalarNode, text, (True, False))  # type: ignore[no-untyped-call]
    return pyyaml_tag != _STR_TAG or bool(_GO_NON_STRING.match(text))


class _GoEmitter(Emitter):
    """go-yaml falls back from a refused literal block to double quotes, never single."""

    def choose_scalar_style(self) -> str:
        chosen: str = super().choose_scalar_style()
        event = self.event
        assert event is not None
        if getattr(event, "style", None) == "|" and chosen != "|":
            return '"'
        return chosen


class _GoDumper(_GoEmitter, yaml.serializer.Serializer, yaml.representer.Representer, Resolver):
    def __init__(self, stream: Any, **kwargs: Any) -> None:
        _GoEmitter.__init__(
            self,
            stream,
            canonical=None,
            indent=None,
            width=kwargs.get("width"),
            allow_unicode=True,
            line_break=None,
        )
        yaml.serializer.Serializer.__init__(self, explicit_start=None, explicit_end=None)
        yaml.representer.Representer.__init__(
            self, default_style=None, default_flow_style=False, sort_keys=True
        )
        Resolver.__init__(self)


def _represent_str(dumper: yaml.representer.BaseRepresenter, text: str) -> ScalarNode:
    """go-yaml's choice of style: literal for multi-line, quoted when plain would not be text."""
    if "\n" in text:
        style: str | None = "|"
    elif _resolves_to_non_string(text):
        style = '"'
    else:
        style = None
    return dumper.represent_scalar(_STR_TAG, text, style=style)


_GoDumper.add_representer(str, _represent_str)


def to_yaml(data: dict[str, str]) -> str:
    """Helm's `toYaml` of a map of strings (keys sorted, no final newline)."""
    text: str = yaml.dump(data, Dumper=_GoDumper, width=80)
    return text.removesuffix("\n")


def to_json(data: Any) -> str:
    """Helm's `toJson`: compact, with Go's HTML-safe escapes."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    for char, escape in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        text = text.replace(char, escape)
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def sha256sum(text: str) -> str:
    """Sprig's `sha256sum`."""
    return hashlib.sha256(text.encode()).hexdigest()
