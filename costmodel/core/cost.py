"""The cost of one op, as exact Python integers. Pure Python: no torch import here."""
from __future__ import annotations

from dataclasses import dataclass, fields

METRICS = ("madds", "flops", "params", "mac", "mac_bytes")
#: metric key -> the word the docs and every rendered table use for it
METRIC_LABELS = {"madds": "MAdds", "flops": "FLOPs", "params": "params", "mac": "MAC",
                 "mac_bytes": "MAC bytes"}


@dataclass(frozen=True, slots=True)
class Cost:
    """MAdds, FLOPs, params and MAC (elements and bytes) of one op, in the README's vocabulary.

    madds:     multiply-adds of contraction ops (conv, linear, matmul, attention)
    flops:     2 * madds + every other arithmetic operation
    params:    parameter elements the op reads (tied weights are deduplicated by the engine)
    mac:       memory access cost: elements read (inputs, weights) plus elements written
    mac_bytes: the same, in bytes at each tensor's dtype
    """

    madds: int = 0
    flops: int = 0
    params: int = 0
    mac: int = 0
    mac_bytes: int = 0

    def __init__(self, madds: int = 0, flops: int = 0, params: int = 0, mac: int = 0,
                 mac_bytes: int = 0) -> None:
        # the dataclass's own __init__, with each slot written by its descriptor (one Cost per
        # op call and per layer; tests/test_report.py checks it matches the fields)
        _SET_COST[0](self, madds)
        _SET_COST[1](self, flops)
        _SET_COST[2](self, params)
        _SET_COST[3](self, mac)
        _SET_COST[4](self, mac_bytes)

    def __add__(self, other: Cost) -> Cost:
        return Cost(self.madds + other.madds, self.flops + other.flops, self.params + other.params,
                    self.mac + other.mac, self.mac_bytes + other.mac_bytes)

    def replace(self, **changes: int) -> Cost:
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values.update(changes)
        return Cost(**values)

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in METRICS}


_SET_COST = tuple(Cost.__dict__[name].__set__ for name in METRICS)
ZERO = Cost()


def total(costs) -> Cost:
    acc = [0, 0, 0, 0, 0]
    for c in costs:
        acc[0] += c.madds
        acc[1] += c.flops
        acc[2] += c.params
        acc[3] += c.mac
        acc[4] += c.mac_bytes
    return Cost(*acc)
