"""Device profiles: what the latency estimate knows about a device, the shipped datasheet
profiles, and where calibrated profiles are saved and loaded (JSON).

A profile holds scalar figures (GEMM peak, bandwidths, fixed costs), per-kind rates, and shape
tables: the FLOP/s a kind of contraction reaches as a function of its GEMM shape (`rows`, the
output positions or tokens; `width`, the channels per group or the smaller GEMM dimension),
measured by `costmodel calibrate` on a grid and interpolated here (`table_rate`). Pure Python.
"""
from __future__ import annotations

import bisect
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

#: glibc's largest mmap threshold on 64-bit Linux (DEFAULT_MMAP_THRESHOLD_MAX): a block above it
#: is always mapped anew by malloc, and unmapped on free
MMAP_BYTES = 32 * 2 ** 20
#: the page a first write faults in
PAGE_BYTES = 4096
#: glibc's initial mmap threshold: a block at or below it sits in the heap's bins and is reused.
#: Between it and MMAP_BYTES a tensor comes from the heap, and faults only if glibc trimmed the
#: heap since its pages were last used (history-dependent: latency.Estimate.heap_faults_s)
HEAP_FLOOR = 128 * 2 ** 10


@dataclass(frozen=True)
class DeviceProfile:
    """What the roofline needs to know about a device.

    peak_flops:            achieved FLOP/s of a large dense fp32 GEMM (2 FLOPs per multiply-add)
    bandwidth_bytes_per_s: streaming memory bandwidth (bytes read + written per second)
    overhead_s:            fixed cost of one kernel (framework dispatch + launch), in seconds
    source:                where the numbers come from (a datasheet, or "calibrated on ...")
    rates:                 FLOP/s of kinds of op that run above or below GEMM peak, by op name
                           ("max_pool"), "spatial conv" (a dense conv with a kernel > 1, which
                           CPUs and GPUs run with Winograd or direct kernels) or category
                           ("conv", "depthwise conv", "group conv"); calibrate() measures them
                           with micro-benchmarks. Other ops use peak_flops.
    overheads:             the fixed cost of one kernel of a kind (same keys as rates), where it
                           differs from overhead_s (a depthwise conv costs far more on a CPU).
    cache_bytes, cache_bandwidth_bytes_per_s: an op whose MAC bytes fit in this much cache
                           moves them at the cache bandwidth (batch-1 activations on a CPU).
    module_call_s:         Python cost of one nn.Module.__call__ (leaf or container)
    free_op_s:             dispatch cost of an op that launches no kernel (a view, a reshape)
    weight_pass_s:         seconds per byte of a conv's weights beyond its rate-table time when
                           the weights are cold, as in a network (on a CPU, oneDNN reorders them
                           on every eager call, a pass the roofline's max() would hide); added
                           to every conv of an eager estimate (rates.conv_weight_pass; 0: not
                           measured)
    page_fault_s, mmap_bytes: seconds per 4 KiB page of a new tensor larger than `mmap_bytes`,
                           paid on its first write: glibc's malloc maps such a block anew for
                           every allocation and unmaps it when freed (its mmap threshold never
                           rises past 32 MiB on 64-bit Linux), so every page faults in again on
                           each call (a language model's logits over a long prompt, batch-8
                           activations of the first convs). Added to every op of an eager
                           estimate that writes such a tensor (rates.page_fault_seconds; 0: not
                           measured). Smaller blocks come from the heap and usually no longer
                           fault after the first call.
    in_model_scale, light_scale, overhead_scale: how much slower the roofline of dense
                           contractions (convs, linear, matmul, attention), the roofline of every
                           other op (depthwise convs, norms, activations, pooling, element-wise,
                           data movement) and the fixed costs run inside a network than in the
                           single-op micro-benchmarks (measured on synthetic blocks by
                           calibrate.py, the fixed costs on floor blocks, measure.py; 1.0 when
                           not calibrated)
    tables:                FLOP/s of a kind of contraction by its GEMM shape, where a single rate
                           misleads (a grouped 1x1 conv with 8 channels per group runs at a
                           fifth of one with 256): kind -> {"rows": [..], "width": [..],
                           "rates": [[FLOP/s per width] per rows]}, interpolated by table_rate
                           (op_shape() in latency.py gives an op's rows and width). A kind with a
                           table uses it instead of `rates`.
    bandwidths:            bytes/s at which the activations of a kind of memory-bound op move
                           where it differs from the cache bandwidth ("copy": a strided
                           copy is slower than a streaming one)
    weight_bandwidths:     ((weight bytes of one op, bytes/s), ...) ascending: how fast the
                           weights of one op stream from memory, by their size (a batch-1 GEMV
                           over a 1 MB matrix streams at half the rate of one over 64 MB);
                           interpolated, and bandwidth_bytes_per_s when empty
    skinny:                weight bytes/s of a linear over few rows by "MxK" (rows x input
                           width), cold (analysis/skinny.py); where it covers a linear's rows
                           it replaces weight_bandwidths for that op (empty: not measured)
    interval:              (low, high) factors on the estimate: the spread of the calibration's
                           residuals on held-out synthetic blocks; interval_level is the share
                           of them it covers. (1, 1) and 0 when not measured.
    fused:                 the deployment runtime's figures for execution="fused" (fusion.py):
                           the keys of this profile it replaces (peak_flops, overhead_s, rates,
                           overheads, in_model_scale, light_scale, overhead_scale, interval,
                           interval_level) plus run_s (the runtime's fixed cost per inference)
                           and source; measured by `costmodel calibrate --execution fused`.
                           Empty: the eager figures, without the Python costs.
    """

    name: str
    peak_flops: float
    bandwidth_bytes_per_s: float
    overhead_s: float
    source: str = ""
    rates: Mapping[str, float] = field(default_factory=dict, hash=False)
    overheads: Mapping[str, float] = field(default_factory=dict, hash=False)
    cache_bytes: int = 0
    cache_bandwidth_bytes_per_s: float | None = None
    module_call_s: float = 0.0
    free_op_s: float = 0.0
    weight_pass_s: float = 0.0
    page_fault_s: float = 0.0
    mmap_bytes: int = MMAP_BYTES
    in_model_scale: float = 1.0
    light_scale: float = 1.0
    overhead_scale: float = 1.0
    interval: tuple[float, float] = (1.0, 1.0)
    interval_level: float = 0.0
    tables: Mapping[str, Mapping[str, Any]] = field(default_factory=dict, hash=False)
    bandwidths: Mapping[str, float] = field(default_factory=dict, hash=False)
    weight_bandwidths: tuple[tuple[float, float], ...] = ()
    skinny: Mapping[str, float] = field(default_factory=dict, hash=False)
    fused: Mapping[str, Any] = field(default_factory=dict, hash=False)

    def grouped_rate(self, kind: str, rows: float, width: float, groups: float) -> float | None:
        """FLOP/s of a grouped conv of `kind` from the tables "KIND@G" measured at G groups:
        each at (rows, width), then interpolated in log groups between the two nearest G
        (clamped); None when the profile has no such table."""
        points = sorted((float(key.rpartition("@")[2]), table) for key, table in
                        self.tables.items() if key.rpartition("@")[0] == kind)
        if not points:
            return None
        return interp([g for g, _ in points], [table_rate(t, rows, width) for _, t in points],
                      groups)

    def weight_bandwidth(self, nbytes: float) -> float:
        """Bytes/s at which `nbytes` of one op's weights stream (weight_bandwidths, log-log
        interpolated, clamped at the ends), else bandwidth_bytes_per_s."""
        points = self.weight_bandwidths
        if not points:
            return self.bandwidth_bytes_per_s
        return interp([b for b, _ in points], [bw for _, bw in points], nbytes)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["rates"] = dict(self.rates)
        out["overheads"] = dict(self.overheads)
        out["interval"] = list(self.interval)
        out["tables"] = {k: {"rows": list(t["rows"]), "width": list(t["width"]),
                             "rates": [list(r) for r in t["rates"]]}
                         for k, t in self.tables.items()}
        out["bandwidths"] = dict(self.bandwidths)
        out["weight_bandwidths"] = [list(p) for p in self.weight_bandwidths]
        out["skinny"] = dict(self.skinny)
        out["fused"] = {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.fused.items()}
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DeviceProfile:
        known = {f.name for f in fields(cls)}
        missing = {"name", "peak_flops", "bandwidth_bytes_per_s", "overhead_s"} - set(data)
        if missing:
            raise ValueError(f"device profile lacks {', '.join(sorted(missing))}")
        values = {k: v for k, v in data.items() if k in known}
        for key in ("peak_flops", "bandwidth_bytes_per_s", "cache_bandwidth_bytes_per_s"):
            if values.get(key) is not None:
                values[key] = float(values[key])
                if values[key] <= 0:
                    raise ValueError(f"device profile {values['name']!r}: {key} must be positive")
        values["overhead_s"] = float(values["overhead_s"])
        if values["overhead_s"] < 0:
            raise ValueError(f"device profile {values['name']!r}: overhead_s must be >= 0")
        values["rates"] = {str(k): float(v) for k, v in (values.get("rates") or {}).items()}
        if any(v <= 0 for v in values["rates"].values()):
            raise ValueError(f"device profile {values['name']!r}: rates must be positive")
        values["overheads"] = {str(k): float(v) for k, v in (values.get("overheads") or {}).items()}
        if any(v < 0 for v in values["overheads"].values()):
            raise ValueError(f"device profile {values['name']!r}: overheads must be >= 0")
        values["cache_bytes"] = int(values.get("cache_bytes") or 0)
        if "mmap_bytes" in values:
            values["mmap_bytes"] = int(values["mmap_bytes"])
            if values["mmap_bytes"] < 0:
                raise ValueError(f"device profile {values['name']!r}: mmap_bytes must be >= 0")
        for key in ("module_call_s", "free_op_s", "weight_pass_s", "page_fault_s",
                    "in_model_scale", "light_scale",
                    "overhead_scale", "interval_level"):
            if key in values:
                values[key] = float(values[key])
                if values[key] < 0:
                    raise ValueError(f"device profile {values['name']!r}: {key} must be >= 0")
        if "interval" in values:
            low, high = (float(v) for v in values["interval"])
            if not 0 < low <= 1 <= high:
                raise ValueError(f"device profile {values['name']!r}: interval must be "
                                 f"(low <= 1 <= high), positive")
            values["interval"] = (low, high)
        values["tables"] = {str(k): _check_table(values["name"], str(k), t)
                            for k, t in (values.get("tables") or {}).items()}
        values["bandwidths"] = {str(k): float(v)
                                for k, v in (values.get("bandwidths") or {}).items()}
        points = tuple((float(b), float(bw)) for b, bw in values.get("weight_bandwidths") or ())
        if any(v <= 0 for v in values["bandwidths"].values()) or any(
                b <= 0 or bw <= 0 for b, bw in points) or list(points) != sorted(points):
            raise ValueError(f"device profile {values['name']!r}: bandwidths must be positive "
                             f"and weight_bandwidths ascending")
        values["weight_bandwidths"] = points
        values["skinny"] = {str(k): float(v) for k, v in (values.get("skinny") or {}).items()}
        if any(v <= 0 for v in values["skinny"].values()):
            raise ValueError(f"device profile {values['name']!r}: skinny bandwidths must be "
                             f"positive")
        if values.get("fused"):
            from .fusion import check_runtime
            values["fused"] = check_runtime(values["name"], values["fused"])
        return cls(**values)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_json(cls, text: str) -> DeviceProfile:
        return cls.from_dict(json.loads(text))


def _check_table(name: str, kind: str, table: Mapping[str, Any]) -> dict[str, Any]:
    """A rate table from JSON, checked: ascending positive axes, one positive rate per cell."""
    try:
        rows = [float(v) for v in table["rows"]]
        width = [float(v) for v in table["width"]]
        rates = [[float(v) for v in row] for row in table["rates"]]
    except (KeyError, TypeError, ValueError):
        raise ValueError(f"device profile {name!r}: table {kind!r} needs rows, width and "
                         f"rates") from None
    ok = (rows and width and rows == sorted(set(rows)) and width == sorted(set(width))
          and min(rows + width) > 0 and len(rates) == len(rows)
          and all(len(r) == len(width) and min(r) > 0 for r in rates))
    if not ok:
        raise ValueError(f"device profile {name!r}: table {kind!r} must have ascending positive "
                         f"axes and a positive rate for every (rows, width)")
    return {"rows": rows, "width": width, "rates": rates}


def interp(xs: Sequence[float], ys: Sequence[float], x: float) -> float:
    """ys at x, linear in log x, clamped to the ends (xs ascending, positive)."""
    if x <= xs[0]:
        return ys[0]
    if x >= xs[-1]:
        return ys[-1]
    i = bisect.bisect_right(xs, x) - 1
    f = (math.log(x) - math.log(xs[i])) / (math.log(xs[i + 1]) - math.log(xs[i]))
    return ys[i] + f * (ys[i + 1] - ys[i])


def table_rate(table: Mapping[str, Any], rows: float, width: float) -> float:
    """FLOP/s of a rate table at (rows, width): bilinear in (log rows, log width), clamped to
    the grid's edges (an op larger than the grid runs at the rate of its largest cell)."""
    per_row = [interp(table["width"], r, width) for r in table["rates"]]
    return interp(table["rows"], per_row, rows)


# Shipped profiles, from published specifications (theoretical peaks: a real run achieves less;
# `costmodel calibrate` measures this machine). fp32 throughout. The per-kernel overhead is not
# on any datasheet: ~5 us is the usual PyTorch eager dispatch cost on a CPU, ~8 us the usual
# dispatch + launch cost of one CUDA kernel from eager PyTorch. Every `source` says so (UNMEASURED).
UNMEASURED = ("datasheet peaks with guessed overheads, not measured: expect real latency to be "
              "higher; run `costmodel calibrate` on the target for a measured profile")
PROFILES: dict[str, DeviceProfile] = {p.name: p for p in (
    # Intel Core i7-8650U (Kaby Lake R, 4 cores, 1.9 GHz base): 4 cores x 2 AVX2 FMA units x
    # 8 fp32 lanes x 2 FLOPs x 1.9 GHz = 486 GFLOP/s; dual-channel DDR4-2400 = 38.4 GB/s
    # (ark.intel.com, product 124968).
    DeviceProfile("laptop-cpu", 486e9, 38.4e9, 5e-6,
                  "Intel Core i7-8650U datasheet (ark.intel.com 124968): 4 x 2 x 8 x 2 x 1.9 GHz; "
                  "DDR4-2400 x 2 channels; " + UNMEASURED),
    # Intel Xeon Platinum 8380 (Ice Lake SP, 40 cores, 2.3 GHz base): 40 x 2 AVX-512 FMA units x
    # 16 lanes x 2 FLOPs x 2.3 GHz = 5.9 TFLOP/s; 8 channels DDR4-3200 = 204.8 GB/s
    # (ark.intel.com, product 212287).
    DeviceProfile("server-cpu", 5.89e12, 204.8e9, 5e-6,
                  "Intel Xeon Platinum 8380 datasheet (ark.intel.com 212287): 40 x 2 x 16 x 2 x "
                  "2.3 GHz; DDR4-3200 x 8 channels; " + UNMEASURED),
    # Qualcomm Snapdragon 855, one Cortex-A76 prime core at 2.84 GHz: 2 x 128-bit NEON FMA pipes
    # = 8 fp32 FMA/cycle = 45 GFLOP/s; LPDDR4X-2133, 4 x 16-bit channels = 34.1 GB/s.
    DeviceProfile("phone-cpu", 45.4e9, 34.1e9, 10e-6,
                  "Snapdragon 855 (Arm Cortex-A76 TRM: 2 x 128-bit FMA pipes; 2.84 GHz prime "
                  "core); LPDDR4X-2133 4 x 16-bit; " + UNMEASURED),
    # NVIDIA A100 SXM4 80GB: 19.5 TFLOP/s fp32 (non-tensor-core), 2,039 GB/s HBM2e
    # (NVIDIA A100 datasheet, 2021).
    DeviceProfile("a100", 19.5e12, 2.039e12, 8e-6,
                  "NVIDIA A100 SXM4 80GB datasheet: FP32 19.5 TFLOPS, HBM2e 2,039 GB/s; "
                  + UNMEASURED),
    # NVIDIA H100 SXM5: 67 TFLOP/s fp32 (non-tensor-core), 3.35 TB/s HBM3
    # (NVIDIA H100 datasheet, 2023).
    DeviceProfile("h100", 67e12, 3.35e12, 8e-6,
                  "NVIDIA H100 SXM5 datasheet: FP32 67 TFLOPS, HBM3 3.35 TB/s; " + UNMEASURED),
)}

# The Python side of eager PyTorch is the same on every device: ~1.5 us per nn.Module.__call__
# and ~1 us per op that launches no kernel (guesses of the usual CPython cost, like overhead_s).
PROFILES = {name: replace(p, module_call_s=1.5e-6, free_op_s=1e-6) for name, p in PROFILES.items()}

DEFAULT_PROFILE = "laptop-cpu"


def profile_dir() -> Path:
    """Where calibrated profiles go: $COSTMODEL_PROFILE_DIR, else ~/.cache/costmodel/profiles."""
    env = os.environ.get("COSTMODEL_PROFILE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "costmodel" / "profiles"


def save_profile(profile: DeviceProfile, path: str | os.PathLike | None = None) -> Path:
    """Write `profile` as JSON to `path` (default: profile_dir() / NAME.json); returns the path."""
    target = Path(path) if path is not None else profile_dir() / f"{profile.name}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(profile.to_json() + "\n")
    return target


def load_profile(spec: str | os.PathLike | DeviceProfile | None = None) -> DeviceProfile:
    """A profile by name or path: an existing JSON file, a saved profile (profile_dir()/NAME.json,
    which wins over a shipped one of the same name, so a calibration of "laptop-cpu" replaces the
    datasheet one) or a shipped profile (PROFILES). None gives DEFAULT_PROFILE.
    Raises ValueError naming the choices when nothing matches."""
    if isinstance(spec, DeviceProfile):
        return spec
    spec = DEFAULT_PROFILE if spec is None else spec
    path = Path(spec)
    if path.suffix == ".json" or path.is_file():
        if not path.is_file():
            raise ValueError(f"device profile file {str(path)!r} does not exist")
        return DeviceProfile.from_json(path.read_text())
    saved = profile_dir() / f"{spec}.json"
    if saved.is_file():
        return DeviceProfile.from_json(saved.read_text())
    if str(spec) in PROFILES:
        return PROFILES[str(spec)]
    raise ValueError(f"unknown device profile {str(spec)!r}; use one of {', '.join(available())} "
                     f"or a path to a profile JSON (`costmodel calibrate` writes one)")


def available() -> list[str]:
    """Names of the shipped profiles and of those saved in profile_dir()."""
    saved = sorted(p.stem for p in profile_dir().glob("*.json")) if profile_dir().is_dir() else []
    return list(PROFILES) + [n for n in saved if n not in PROFILES]
