"""Graph: the traced model as a networkx DiGraph. The only code that reads torch.fx node.meta.

Each node carries plain data that later stages (annotate, fragmentation, guidelines, renderers)
read without torch.fx: its kind, target, module path, output specs and recorded torch calls.
"""
from __future__ import annotations

from typing import Any

import networkx as nx
from torch import fx, nn

from .recorder import NodeRecord, callable_name


def module_paths(graph: fx.Graph) -> dict[fx.Node, str]:
    """The qualified name of the module each node belongs to ('' at the top level)."""
    paths = {}
    for node in graph.nodes:
        if node.op == "call_module":
            paths[node] = str(node.target)
            continue
        stack = node.meta.get("nn_module_stack")
        paths[node] = next(reversed(stack.values()))[0] if stack else ""
    return paths


def describe_target(node: fx.Node, root: nn.Module) -> str:
    if node.op == "call_module":
        return type(root.get_submodule(node.target)).__name__
    if node.op == "call_method":
        return f"Tensor.{node.target}"
    if node.op == "call_function":
        return callable_name(node.target)
    return str(node.target)


def build(graph: fx.Graph, root: nn.Module, records: dict[fx.Node, NodeRecord],
          paths: dict[fx.Node, str]) -> nx.DiGraph:
    """One networkx node per fx node (keyed by node name), one edge per data dependency."""
    g = nx.DiGraph()
    for order, node in enumerate(graph.nodes):
        record = records[node]
        inputs = [records[a].outputs for a in node.all_input_nodes if a.op != "get_attr"]
        attrs: dict[str, Any] = {
            "order": order,
            "kind": node.op,
            "target": describe_target(node, root),
            "module": paths.get(node, ""),
            "inputs": tuple(s for outs in inputs for s in outs),
            "outputs": record.outputs,
            "calls": tuple(record.calls),
            "unrecorded": record.unrecorded,
        }
        g.add_node(node.name, **attrs)
        for arg in node.all_input_nodes:
            g.add_edge(arg.name, node.name)
    return g
