"""Closed vocabularies: the words costmodel prints and serialises.

They are string enums so that they compare equal to their values, serialise as plain strings in
JSON, and cannot drift between the engine, the report and the renderers.
"""
from __future__ import annotations

from enum import Enum, unique


class StrEnum(str, Enum):
    def __str__(self) -> str:  # print the value, not "Category.CONV"
        return self.value


class Category(StrEnum):
    """What kind of work an op does; `Report.by_operator()` rolls up along this axis."""

    CONV = "conv"
    DEPTHWISE_CONV = "depthwise conv"
    GROUP_CONV = "group conv"
    TRANSPOSED_CONV = "transposed conv"
    LINEAR = "linear"
    MATMUL = "matmul"
    ATTENTION = "attention"
    NORM = "norm"
    ACTIVATION = "activation"
    ELEMENTWISE = "elementwise"
    REDUCTION = "reduction"
    SOFTMAX = "softmax"
    POOL = "pool"
    RESAMPLE = "resample"
    EMBEDDING = "embedding"
    DATA_MOVEMENT = "data movement"
    CREATION = "creation"
    DROPOUT = "dropout"
    UNSUPPORTED = "unsupported"
    RECURRENT = "recurrent"
    SPECTRAL = "spectral"        # Fourier transforms


#: Categories whose arithmetic is multiply-adds (they are the only ones with MAdds > 0).
CONTRACTION = frozenset(
    {Category.CONV, Category.DEPTHWISE_CONV, Category.GROUP_CONV, Category.TRANSPOSED_CONV,
     Category.LINEAR, Category.MATMUL, Category.ATTENTION}
)


class Status(StrEnum):
    """Whether a total covers every op (`complete`) or is a lower bound (`partial`)."""

    COMPLETE = "complete"
    PARTIAL = "partial"


class NodeStatus(StrEnum):
    """How the engine treated one graph node."""

    COSTED = "costed"
    IGNORED = "ignored"          # costs nothing, with a written reason (view, metadata, eval
                                 # dropout)
    UNSUPPORTED = "unsupported"  # has no formula: its cost is unknown and the totals are partial


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


class Code(StrEnum):
    """Stable diagnostic codes. Never renumber or reuse one; add new codes at the end."""

    UNSUPPORTED_OP = "CM001"     # an op with no formula; totals are partial
    UNRECORDED_OP = "CM002"      # a node made new tensors through no visible torch op
    INPUT_ASSUMED = "CM003"      # no input was given; costmodel assumed one
    UNUSED_PARAMS = "CM004"      # parameters that the traced forward never reads
    HOOKS_SKIPPED = "CM005"      # the model has hooks that the analysis did not run
    DROPOUT_EVAL = "CM006"       # dropout is the identity at inference and costs nothing
    TRAINING_MODE = "CM007"      # the model was in training mode; analysed as eval
    CAPTURE_FALLBACK = "CM008"   # the eager capture failed on the model; torch.fx captured it
    DATA_DEPENDENT = "CM009"     # a size depends on tensor values; its upper bound was assumed
    NO_BACKWARD = "CM010"        # mode="train": an op has no backward formula; totals are partial
    HOOKS_RUN = "CM011"          # the model's forward hooks ran on meta tensors (or failed there)
    # ShuffleNet V2 guidelines (costmodel.guidelines): G<guideline><number>
    G1_CHANNEL_RATIO = "G101"    # a conv's MAC exceeds the G1 bound (unequal in/out feature maps)
    G2_GROUP_CONV = "G201"       # a group conv's MAC overhead over a dense conv of equal MAdds
    G3_FRAGMENTED_BLOCK = "G301"  # a block with many fragments or parallel branches
    G3_PARALLEL_BRANCHES = "G302"  # the model's average parallelism (branchy, fragmented)
    G4_ELEMENTWISE_SHARE = "G401"  # element-wise ops' share of MAC / time far above their FLOPs
    G4_RESIDUAL_ADDS = "G402"    # element-wise residual adds take a material share of MAC


class Role(StrEnum):
    """What a tensor is to the model: an activation, a parameter, a buffer or another constant."""

    ACTIVATION = "activation"
    PARAM = "param"
    BUFFER = "buffer"
    CONST = "const"


class Mode(StrEnum):
    """What an analysis costs: inference (`eval`) or a training step (`train`)."""

    EVAL = "eval"
    TRAIN = "train"


class CaptureKind(StrEnum):
    """Which capture made the graph (`Report.capture`)."""

    EAGER = "eager (meta tensors)"
    FX = "torch.fx"


class CaptureChoice(StrEnum):
    """The `capture=` argument of analyze()."""

    AUTO = "auto"
    EAGER = "eager"
    FX = "fx"


class NodeKind(StrEnum):
    """The kind of a graph node (torch.fx's `Node.op` names, which both captures use)."""

    PLACEHOLDER = "placeholder"
    GET_ATTR = "get_attr"
    CALL_MODULE = "call_module"
    CALL_FUNCTION = "call_function"
    CALL_METHOD = "call_method"
    OUTPUT = "output"


#: node kinds that run an op (the others are inputs, attributes and the output).
COMPUTE = frozenset({NodeKind.CALL_MODULE, NodeKind.CALL_FUNCTION, NodeKind.CALL_METHOD})


class Bound(StrEnum):
    """Which term of the latency estimate is largest for an op."""

    COMPUTE = "compute"
    MEMORY = "memory"
    OVERHEAD = "overhead"


@unique
class OpFlag(StrEnum):
    """Facts about a torch callable that travel with its recorded call (`OpCall.flags`): ops/
    sets them once per callable, pure code (formulas, analysis) reads them."""

    INPLACE = "inplace"            # writes its first argument: `relu_`, `__iadd__`, `copy_`
    MUTATES = "mutates"            # may change its first argument's metadata: `unsqueeze_`,
                                   # `x.data = y`
    DETACH = "detach"              # its output needs no gradient, whatever its input
    SUM_BACK = "sum back"          # a copy whose backward sums gy over copies: expand, repeat
    SCATTER_ADD = "scatter-add"    # a copy whose backward scatter-adds gy: gather, index, getitem
    PASS_ON = "pass on"            # a copy whose backward hands gy on as views: cat, reshape, clone
    CAPS_SIZES = "caps sizes"      # can cap a data-dependent size: a slice, narrow, top-k
    DATA_DEPENDENT = "data-dependent"  # its output size may depend on tensor values (nonzero, nms)
