"""Memory does not grow with batch or resolution: nothing real executes.

Measured in a fresh subprocess with the kernel's peak-RSS counter (VmHWM), so that what other
tests allocated does not blur the number.
"""
from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("torchvision")

SCRIPT = textwrap.dedent("""
    import torch, torchvision, costmodel

    def peak_mib():
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024

    model = torchvision.models.resnet50().eval()      # real weights: ~100 MiB, before the baseline
    costmodel.analyze(model, "1x3x64x64")              # warm up imports and caches
    before = peak_mib()
    report = costmodel.analyze(model, "64x3x1024x1024")
    single = costmodel.analyze(model, "1x3x1024x1024")
    print(peak_mib() - before, report.totals.madds, single.totals.madds)
""")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_resnet50_at_64x3x1024x1024_adds_little_memory():
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True)
    growth_mib, madds, single = out.stdout.split()
    # the input alone would be 768 MiB and the activations tens of GiB; the analysis adds ~MiB
    assert float(growth_mib) < 200, growth_mib
    assert int(madds) == 64 * int(single)
