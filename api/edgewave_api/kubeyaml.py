"""YAML that Kubernetes tools read back exactly as it was written.

PyYAML follows YAML 1.1 and leaves strings such as `0255e1`, `1e3`, `0o17` or `y` unquoted,
because to it they are strings. kubectl, Argo CD and Flux read YAML with Go's reader, which
takes them as numbers or booleans, so a label value `0255e1` came back as the integer 2550
and the API server refused the manifest ("must be of type string"). Every manifest,
kubeconfig and `-o yaml` output Edgewave writes goes through `dump`/`dump_all`, and the
generated CRDs through `Dumper`; they quote any string some YAML reader would take for
something else.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import yaml

# Plain scalars that YAML 1.1, YAML 1.2 or Go's reader resolve to a non-string.
_NOT_A_STRING = re.compile(
    r"""
    [-+]?(?:0b[01_]+|0o?[0-7_]+|0x[0-9a-fA-F_]+|[0-9][0-9_]*)          # integers
    | [-+]?(?:\.[0-9_]+|[0-9][0-9_]*(?:\.[0-9_]*)?)(?:[eE][-+]?[0-9]+)?  # floats
    | [-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?                   # base 60 (YAML 1.1)
    | [-+]?\.(?:inf|Inf|INF) | \.(?:nan|NaN|NAN)
    | y|Y|yes|Yes|YES|n|N|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF
    | ~|null|Null|NULL|<<|=
    """,
    re.VERBOSE,
)


def ambiguous(text: str) -> bool:
    """Whether `text`, written unquoted, would be read back as something other than a string."""
    return _NOT_A_STRING.fullmatch(text) is not None


class Dumper(yaml.SafeDumper):
    """Quotes ambiguous strings; writes multi-line ones as blocks, so they read as written."""


def _represent_str(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
    style = "'" if ambiguous(text) else "|" if "\n" in text else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


Dumper.add_representer(str, _represent_str)


def dump(document: Any) -> str:
    """One document, keys in their given order, block style."""
    return yaml.dump(document, Dumper=Dumper, sort_keys=False, default_flow_style=False)


def dump_all(documents: Iterable[Any]) -> str:
    """Several documents separated by `---`, as `kubectl apply -f -` takes them."""
    return yaml.dump_all(list(documents), Dumper=Dumper, sort_keys=False, default_flow_style=False)
