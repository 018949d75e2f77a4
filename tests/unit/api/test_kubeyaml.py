"""kubeyaml quotes every string some YAML reader would take for a number, boolean or null."""

from __future__ import annotations

import pytest
import yaml

from edgewave_api import kubeyaml

# Each of these is a string to PyYAML's default dumper, written unquoted, and a number,
# boolean or null to Go's reader (kubectl, Argo CD, Flux) or to YAML 1.2.
AMBIGUOUS = [
    "0255e1", "1e3", "-2E-4", "12", "+7", "0o17", "0x1F", "0b101", "1_000", "017",
    "3.", ".5", "12:30", ".inf", "-.Inf", ".NaN",
    "y", "Y", "n", "N", "yes", "No", "on", "OFF", "true", "False", "~", "null", "NULL",
]  # fmt: skip
PLAIN = ["eu-west", "ab12", "1.0.0", "sha256:ab", "e1", "x1e3", "0255e1z", "yes-please", ""]


@pytest.mark.parametrize("text", AMBIGUOUS)
def test_strings_that_read_back_as_something_else_are_quoted(text: str) -> None:
    assert kubeyaml.ambiguous(text)
    written = kubeyaml.dump({"value": text})
    assert written == f"value: '{text}'\n"
    assert yaml.safe_load(written) == {"value": text}


@pytest.mark.parametrize("text", PLAIN)
def test_ordinary_strings_stay_as_they_were(text: str) -> None:
    assert not kubeyaml.ambiguous(text)
    assert kubeyaml.dump({"value": text}) == yaml.safe_dump({"value": text})


def test_pyyaml_alone_leaves_some_of_them_bare() -> None:
    # Why the module exists: without it these reach kubectl unquoted.
    bare = [t for t in AMBIGUOUS if yaml.safe_dump(t).startswith(t)]
    assert {"0255e1", "1e3", "0o17", "y", "n"} <= set(bare)


def test_documents_keep_order_types_and_separators() -> None:
    documents = [{"kind": "A", "n": 3, "ok": True, "labels": {"r": "0255e1"}}, {"kind": "B"}]
    written = kubeyaml.dump_all(iter(documents))
    # Keys too: Go reads a bare `n:` key as the boolean false.
    assert written.startswith("kind: A\n'n': 3\nok: true\n")
    assert "\n---\n" in written
    assert list(yaml.safe_load_all(written)) == documents


def test_multi_line_strings_are_blocks_that_read_back_as_written() -> None:
    text = "first line\nsecond: line\n"
    written = kubeyaml.dump({"description": text})
    assert written.startswith("description: |\n  first line\n")
    assert yaml.safe_load(written) == {"description": text}
