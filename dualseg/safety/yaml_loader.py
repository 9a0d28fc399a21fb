"""YAML read defensively: ``yaml.safe_load`` (no tags that run code), plus what it lets through: a key given twice
in one mapping (YAML's last-wins hides a typo) is an error naming both lines, and aliases may not expand the
document beyond :data:`NODE_BUDGET` nodes (a nested anchor "billion laughs" bomb would otherwise hang whoever walks
the result)."""

from __future__ import annotations

from typing import Any

import yaml

from dualseg.errors import DualsegError

NODE_BUDGET = 100_000  # a config has a few hundred nodes; aliases expanded beyond this are refused


def _expanded_size(node: yaml.Node, sizes: dict[int, int]) -> int:
    """Node count with every alias expanded (memoised per node: the shared subtree is counted, not walked, again)."""
    if id(node) in sizes:
        return sizes[id(node)]
    size = 1
    if isinstance(node, yaml.SequenceNode):
        size += sum(_expanded_size(child, sizes) for child in node.value)
    elif isinstance(node, yaml.MappingNode):
        size += sum(_expanded_size(k, sizes) + _expanded_size(v, sizes) for k, v in node.value)
    sizes[id(node)] = min(size, NODE_BUDGET + 1)
    return sizes[id(node)]


class _Loader(yaml.SafeLoader):
    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                first = seen.setdefault(key, line)
            except TypeError:  # an unhashable key: SafeLoader reports it
                break
            if first != line:
                raise DualsegError(f"{self.name}: key {str(key)[:60]!r} is given twice (lines {first} and {line}); "
                                   "keep one")
        return super().construct_mapping(node, deep=deep)


def load_yaml_text(text: str, source: str) -> Any:
    """Parse ``text`` (named ``source`` in messages) under the rules above; YAML syntax errors are raised as
    :class:`yaml.YAMLError` for the caller to place."""
    loader = _Loader(text)
    loader.name = source
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if _expanded_size(node, {}) > NODE_BUDGET:
            raise DualsegError(f"{source}: its aliases expand to more than {NODE_BUDGET} YAML nodes (an alias "
                               "bomb?); write the values out instead of nesting anchors")
        return loader.construct_document(node)
    finally:
        loader.dispose()
