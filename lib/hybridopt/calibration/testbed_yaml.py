"""Fitted presets written into params/testbed.yaml as text. `preset_yaml` dumps one preset (Sourced
values in flow style); `replace_block` puts it between marker comments, replacing the block written
before or, the first time, appending it to its section, so the rest of the hand-written file, its
comments included, stays as it is."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml


class _FlowMap(dict):
    """A mapping dumped in flow style ({value: ..., basis: ..., source: ...})."""


class _FlowList(list):
    """A list dumped in flow style ([low, high])."""


class _Dumper(yaml.SafeDumper):
    """SafeDumper that writes _FlowMap and _FlowList in flow style."""


_Dumper.add_representer(_FlowMap, lambda d, m: d.represent_mapping("tag:yaml.org,2002:map", m.items(), flow_style=True))
_Dumper.add_representer(_FlowList, lambda d, v: d.represent_sequence("tag:yaml.org,2002:seq", v, flow_style=True))


def _flowify(obj: Any) -> Any:
    """YAML data with every Sourced value ({value, basis, source}) marked for flow style."""
    if isinstance(obj, dict):
        if set(obj) <= {"value", "basis", "source"} and "value" in obj:
            return _FlowMap({k: (_FlowList(v) if isinstance(v, list) else v) for k, v in obj.items()})
        return {k: _flowify(v) for k, v in obj.items()}
    return obj


def preset_yaml(name: str, data: Mapping[str, Any], indent: int = 4) -> str:
    """`name:` and its mapping as YAML text indented by `indent` spaces (Sourced values in flow style)."""
    text = yaml.dump({name: _flowify(dict(data))}, Dumper=_Dumper, sort_keys=False, width=10_000, allow_unicode=True)
    pad = " " * indent
    return "".join(pad + line + "\n" for line in text.splitlines())


def _markers(section: str, name: str, indent: int) -> tuple[str, str]:
    pad = " " * indent
    return (f"{pad}# >>> {section}.{name}: written by hybridopt (do not edit by hand; rerun the command)\n",
            f"{pad}# <<< {section}.{name}\n")


def replace_block(text: str, section: str, name: str, block: str, indent: int = 4) -> str:
    """testbed.yaml text with `testbed.<section>.<name>` replaced by `block` between marker comments;
    the first time, the block goes at the end of the `  <section>:` mapping."""
    begin, end = _markers(section, name, indent)
    if begin in text and end in text:
        i, j = text.index(begin), text.index(end) + len(end)
        return text[:i] + begin + block + end + text[j:]
    lines = text.splitlines(keepends=True)
    head = f"{' ' * (indent - 2)}{section}:"
    try:
        start = next(i for i, ln in enumerate(lines) if ln.rstrip() == head or ln.startswith(head + " "))
    except StopIteration:
        raise ValueError(f"testbed.yaml has no '{head.strip()}' mapping to add {section}.{name} to") from None
    stop = len(lines)
    for i in range(start + 1, len(lines)):
        ln = lines[i]
        if ln.strip() and not ln.lstrip().startswith("#") and len(ln) - len(ln.lstrip()) <= indent - 2:
            stop = i
            break
    while stop > start + 1 and (not lines[stop - 1].strip() or
                                (lines[stop - 1].lstrip().startswith("#")
                                 and len(lines[stop - 1]) - len(lines[stop - 1].lstrip()) <= indent - 2)):
        stop -= 1
    return "".join(lines[:stop]) + begin + block + end + "".join(lines[stop:])
