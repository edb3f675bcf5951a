"""Read YAML or JSON configuration keeping the line of every key, so errors can name it.

pydantic reports where a value is wrong as a path (`inboxes.support.filters.0.steps`); an
admin editing the file wants the line. PyYAML's node tree has both, so the file is parsed
once into plain data plus a path -> line map.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from hub.errors import ValidationFailed

Path = tuple[str | int, ...]
M = TypeVar("M", bound=BaseModel)

MAX_SOURCE_BYTES = 2_000_000  # a policy or roster bigger than this is a mistake, not a config


class ConfigFileError(ValidationFailed):
    """A routing configuration file is wrong; `problems` lists each as 'source:line: message'."""

    code = "invalid_routing_config"

    def __init__(self, problems: Sequence[str]):
        self.problems = list(problems)
        super().__init__("; ".join(self.problems))


@dataclass(frozen=True, slots=True)
class SourceDocument:
    """Parsed data and where each key or list item stands in the source text."""

    source: str  # a file name or "request body", used in messages
    data: Any
    lines: dict[Path, int]

    def line_of(self, path: Sequence[str | int]) -> int | None:
        """The line of `path`, or of its nearest ancestor that has one."""
        key: Path = tuple(path)
        while key:
            if key in self.lines:
                return self.lines[key]
            key = key[:-1]
        return self.lines.get((), None)

    def problem(self, path: Sequence[str | int], message: str) -> str:
        line = self.line_of(path)
        where = f"{self.source}:{line}" if line is not None else self.source
        dotted = dotted_path(path)
        return f"{where}: {dotted}: {message}" if dotted else f"{where}: {message}"

    def pydantic_problems(self, error: ValidationError) -> list[str]:
        return [self.problem(tuple(e["loc"]), e["msg"]) for e in error.errors()]

    def validated(self, model: type[M]) -> M:
        """The data as `model`, or ConfigFileError naming the line of each problem."""
        try:
            return model.model_validate(self.data)
        except ValidationError as exc:
            raise ConfigFileError(self.pydantic_problems(exc)) from None


def dotted_path(path: Sequence[str | int]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def parse_source(text: str, source: str) -> SourceDocument:
    """Parse YAML (or JSON, which is read the same way) into data with line numbers."""
    if len(text.encode()) > MAX_SOURCE_BYTES:
        raise ConfigFileError([f"{source}: larger than {MAX_SOURCE_BYTES} bytes"])
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        reason = getattr(exc, "problem", None) or str(exc)
        if source.endswith(".json"):
            try:  # a JSON-only construct PyYAML rejects (e.g. tabs): JSON's own message
                data = json.loads(text)
            except json.JSONDecodeError as jexc:
                raise ConfigFileError([f"{source}:{jexc.lineno}: {jexc.msg}"]) from None
            return SourceDocument(source, data, {})
        raise ConfigFileError([f"{source}{line}: {reason}"]) from None
    lines: dict[Path, int] = {}
    if node is not None:
        _walk(node, (), lines)
    return SourceDocument(source, data, lines)


def _walk(node: yaml.Node, path: Path, lines: dict[Path, int]) -> None:
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = str(key_node.value)
            lines[(*path, key)] = key_node.start_mark.line + 1
            _walk(value_node, (*path, key), lines)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _walk(item, (*path, index), lines)
