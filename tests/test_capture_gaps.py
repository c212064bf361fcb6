"""Capture gaps (issue 13, section 2): models whose own checks, hints or constants used to stop
the eager capture. Expected numbers come from FlopCounterMode / 2 on a real forward of the same
small model under the MATH SDPA backend (on CPU it does not count the fused SDPA kernel), or from
arithmetic written here."""
from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

import costmodel
from costmodel.core.vocab import CaptureKind, Status


def oracle(model: nn.Module, *args, grad: bool = False, **kwargs) -> int:
    """FlopCounterMode / 2 on a real forward (grad=True keeps torch.nn off its fused fast path,
    which FlopCounterMode does not see)."""
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter, \
            torch.set_grad_enabled(grad):
        model(*args, **kwargs)
    flops = counter.get_total_flops()
    assert flops % 2 == 0
    return flops // 2


def eager(model: nn.Module, *inputs, **kwargs):
    report = costmodel.analyze(model, *inputs, capture="eager", **kwargs)
    assert report.capture == CaptureKind.EAGER
    return report


# ---- 1. transformers' own value checks -----------------------------------------------------

transformers = pytest.importorskip("transformers")

SMALL = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
             vocab_size=100, max_position_embeddings=64)
SEQ2SEQ = dict(vocab_size=100, d_model=32, encoder_layers=1, decoder_layers=1,
               encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=64,
               decoder_ffn_dim=64, max_position_embeddings=64)


def _detr():
    backbone = transformers.ResNetConfig(embedding_size=8, hidden_sizes=[8, 16, 16, 32],
                                         depths=[1, 1, 1, 1], out_features=["stage4"])
    return transformers.DetrModel(transformers.DetrConfig(
        use_timm_backbone=False, use_pretrained_backbone=False, backbone_config=backbone,
        num_queries=10, **{k: v for k, v in SEQ2SEQ.items()
                           if k not in ("vocab_size", "max_position_embeddings")}))


# what stopped each: warn_if_padding_and_no_attention_mask (`pad_token_id in input_ids[:, [-1,
# 0]]`), _ignore_causal_mask_sdpa or _ignore_bidirectional_mask_sdpa (`padding_mask.all()`)
HF = {
    "deberta": lambda: transformers.DebertaModel(transformers.DebertaConfig(**SMALL)),
    "roformer": lambda: transformers.RoFormerModel(
        transformers.RoFormerConfig(**SMALL, embedding_size=32)),
    "convbert": lambda: transformers.ConvBertModel(
        transformers.ConvBertConfig(**SMALL, embedding_size=32)),
    "biogpt": lambda: transformers.BioGptModel(transformers.BioGptConfig(**SMALL)),
    "bart": lambda: transformers.BartModel(transformers.BartConfig(**SEQ2SEQ)),
    "detr": _detr,
}


@pytest.mark.parametrize("name", sorted(HF))
def test_transformers_value_checks_do_not_stop_the_capture(name):
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = HF[name]().eval()
    if name == "detr":
        x, spec = torch.randn(1, 3, 64, 64), "1x3x64x64"
    else:   # token 1 is not pad_token_id (0), so the real forward's own check stays quiet
        x, spec = torch.ones(2, 16, dtype=torch.int64), "2x16:int64"
    expected = oracle(model, x)
    report = eager(model, spec)
    assert report.totals.status == Status.COMPLETE
    assert report.totals.madds == expected
    assert report.totals.params == sum(p.numel() for p in model.parameters())
    assert not torch.compiler.is_compiling()   # the trace flag is put back


# ---- 2. torch._check* are compiler hints ----------------------------------------------------

class Checked(nn.Module):
    """LLaVA / PaliGemma's form: torch._check_tensor_all_with on a tensor condition."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 4)

    def forward(self, x):
        torch._check_tensor_all_with(ValueError, x.abs() >= 0, lambda: "negative")
        torch._check_tensor_all(torch.isfinite(x))
        return self.fc(x)


def test_torch_check_hints_do_not_stop_the_capture():
    report = eager(Checked(), "3x8")
    assert report.totals.madds == 3 * 8 * 4
    with pytest.raises(ValueError):   # outside the capture the hint is torch's own again
        torch._check_tensor_all_with(ValueError, torch.tensor([False]), lambda: "x")


# ---- 5. nn.Transformer* with a mask, torch.distributions --------------------------------------

def test_transformer_encoder_with_a_mask():
    torch.manual_seed(0)
    enc = nn.TransformerEncoder(nn.TransformerEncoderLayer(16, 2, 32, batch_first=True), 2).eval()
    x, mask = torch.randn(1, 10, 16), torch.randn(10, 10)
    expected = oracle(enc, x, mask=mask, grad=True)
    # per layer: q, k, v, out projections 4*10*16*16, scores and values 2*10*10*16, FFN
    # 2*10*16*32
    assert expected == 2 * (4 * 10 * 16 * 16 + 2 * 10 * 10 * 16 + 2 * 10 * 16 * 32)
    report = eager(enc, "1x10x16", kwargs={"mask": "10x10"})
    assert report.totals.madds == expected


def test_transformer_with_masks_and_a_causal_constant():
    torch.manual_seed(0)
    model = nn.Transformer(16, 2, 1, 1, 32, batch_first=True).eval()
    src, tgt = torch.randn(1, 10, 16), torch.randn(1, 6, 16)
    causal = nn.Transformer.generate_square_subsequent_mask(6)
    expected = oracle(model, src, tgt, src_mask=torch.zeros(10, 10), tgt_mask=causal, grad=True)
    report = eager(model, "1x10x16", "1x6x16", kwargs={"src_mask": "10x10", "tgt_mask": "6x6"})
    assert report.totals.madds == expected


class Gaussian(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 16)

    def forward(self, x):
        mu, log_sd = self.fc(x).chunk(2, -1)
        return torch.distributions.Normal(mu, log_sd.exp()).rsample()


def test_distributions_with_default_validation():
    default = torch.distributions.Distribution._validate_args
    report = eager(Gaussian(), "2x8")
    assert report.totals.madds == 2 * 8 * 16
    assert torch.distributions.Distribution._validate_args == default


# ---- 3. values read from constants -----------------------------------------------------------

class PaddedConv(nn.Module):
    """Encodec's form: padding sizes kept as integer buffers, read as numbers."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(2, 4, 5, stride=2)
        self.register_buffer("stride", torch.tensor(2), persistent=False)
        self.register_buffer("kernel_size", torch.tensor(5), persistent=False)
        self.register_buffer("padding_total", torch.tensor(3), persistent=False)

    def forward(self, x):
        length = x.shape[-1]
        n_frames = (length - self.kernel_size + self.padding_total) / self.stride + 1
        n_frames = torch.ceil(n_frames).to(torch.int64) - 1
        extra = n_frames * self.stride + self.kernel_size - self.padding_total - length
        x = nn.functional.pad(x, (self.padding_total, extra))   # 0-d tensors used as sizes
        end = x.shape[-1] - extra
        return self.conv(x[..., :end])


def test_integer_buffers_are_read_as_numbers():
    model = PaddedConv()
    x = torch.randn(1, 2, 33)
    out_len = model(x).shape[-1]   # the real forward: (33 + 3 - 5) // 2 + 1 = 16
    assert out_len == 16
    report = eager(model, "1x2x33")
    assert report.layers[-1].outputs[0] == (1, 4, out_len)
    assert report.totals.madds == out_len * 4 * 2 * 5


class QuantScale(nn.Module):
    """A quantization scale and zero point kept as one-element float and int buffers."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 8)
        self.register_buffer("scale", torch.tensor([0.5]))
        self.register_buffer("zero_point", torch.tensor([3], dtype=torch.int32))

    def forward(self, x):
        scale, zero = self.scale.item(), int(self.zero_point)
        return self.fc(x) * scale + zero


class ConstantMask(nn.Module):
    """LED / Longformer's form: a mask built from constants, read back (.item(), .tolist(),
    an `if` on it)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 8)

    def forward(self, x):
        mask = torch.ones(x.shape[:2], device=x.device, dtype=torch.long)
        mask[:, -1] = 2
        is_global = (mask > 1).flatten().any().item()
        positions = torch.arange(x.shape[1], device=x.device)
        keep = positions[mask[0] == 1].tolist()
        if bool(mask.sum() > 0) and is_global:
            x = x[:, keep]
        return self.fc(x)


def test_constants_and_small_buffers_are_read():
    assert eager(QuantScale(), "2x8").totals.madds == 2 * 8 * 8
    report = eager(ConstantMask(), "1x5x8")
    assert report.layers[-1].outputs[0] == (1, 4, 8)   # the real mask keeps 4 of 5 positions
    assert report.totals.madds == 4 * 8 * 8


class WrittenFromData(nn.Module):
    """A constant that an activation writes into is no longer known: reading it still stops."""

    def forward(self, x):
        mask = torch.zeros(x.shape, device=x.device)
        mask[x > 0] = 1
        return x[:, : int(mask.sum())]


def test_a_constant_written_from_data_is_not_known():
    with pytest.raises(costmodel.errors.CostmodelError, match="reads a tensor's value"):
        eager(WrittenFromData(), "1x5")


def test_vjepa2_target_mask_from_arange():
    """V-JEPA 2 builds its default masks with torch.arange and reads `target_mask.max() + 1`."""
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = transformers.VJEPA2Model(transformers.VJEPA2Config(
            hidden_size=32, num_hidden_layers=1, num_attention_heads=2, mlp_ratio=2, crop_size=32,
            patch_size=8, frames_per_clip=2, tubelet_size=2, pred_hidden_size=32,
            pred_num_hidden_layers=1, pred_num_attention_heads=2)).eval()
    expected = oracle(model, torch.randn(1, 2, 3, 32, 32))
    report = eager(model, "1x2x3x32x32")
    assert report.totals.status == Status.COMPLETE
    assert report.totals.madds == expected


def test_longformer_global_attention_flag():
    """Longformer reads `is_index_global_attn.flatten().any().item()` of a mask it builds from
    torch.ones: its linear layers match FlopCounterMode's addmm count."""
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = transformers.LongformerModel(transformers.LongformerConfig(
            **{**SMALL, "num_hidden_layers": 1}, attention_window=4)).eval()
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            model(torch.ones(1, 16, dtype=torch.int64))
    addmm = sum(v for k, v in counter.get_flop_counts()["Global"].items() if "addmm" in str(k))
    report = eager(model, "1x16:int64")
    assert report.totals.status == Status.COMPLETE
    assert sum(layer.madds for layer in report.layers if layer.op == "linear") == addmm // 2


# ---- 4. misleading errors --------------------------------------------------------------------

class MovesToCpu(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 4)

    def forward(self, x):
        y = self.fc(x.to("cpu"))
        return y.cpu().to(torch.device("cpu"), torch.float32) + y.to(x)


def test_a_device_move_stays_on_meta():
    report = eager(MovesToCpu(), "2x8")
    assert report.totals.madds == 2 * 8 * 4


class Picks(nn.Module):
    """Switch Transformers / NLLB-MoE's form, outside an MoE block (no `experts` child): a layer
    picked by a tensor formatted into a key."""

    def __init__(self, name: str = "layers") -> None:
        super().__init__()
        self.add_module(name, nn.ModuleDict({f"expert_{i}": nn.Linear(4, 4) for i in range(2)}))
        self.name = name

    def forward(self, x):
        idx = x.argmax(-1)[0]
        return getattr(self, self.name)[f"expert_{idx}"](x)


def test_a_tensor_formatted_into_a_key_says_so():
    with pytest.raises(costmodel.errors.CostmodelError) as info:
        eager(Picks(), "1x4")
    message = str(info.value)
    assert "\n" not in message and "formats a tensor into a string" in message
    assert "KeyError" in message


def test_a_key_from_an_assumed_routing_inside_an_moe_block():
    """The same code in a module with `experts`: the argmax is a routing, assumed (routing.py)."""
    report = eager(Picks("experts"), "1x4")
    assert report.totals.madds == 4 * 4
    assert any("router's choices" in d.message for d in report.diagnostics)


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_torchscript_modules_need_the_eager_module():
    model = nn.Sequential(nn.Linear(4, 4))
    for scripted in (torch.jit.script(model), torch.jit.trace(model, torch.randn(1, 4))):
        with pytest.raises(costmodel.errors.AnalysisError, match="TorchScript .* eager nn.Module"):
            costmodel.analyze(scripted, "1x4")


# ---- 6. dynamically quantized models ---------------------------------------------------------

@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("capture", ["eager", "fx"])
def test_dynamically_quantized_linear(capture):
    """quantize_dynamic's qint8 Linear keeps its weights packed (parameters() sees none): they are
    counted as the model's parameters, with int8 bytes, and the MAdds are the linear's."""
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 8)).eval()
    float_params = sum(p.numel() for p in model.parameters())
    quantized = torch.ao.quantization.quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8)
    assert sum(p.numel() for p in quantized.parameters()) == 0
    report = costmodel.analyze(quantized, "2x16", capture=capture)
    assert report.totals.status == Status.COMPLETE
    assert report.totals.madds == 2 * (16 * 32 + 32 * 8)
    assert report.totals.params == float_params == 16 * 32 + 32 + 32 * 8 + 8
    assert report.totals.params_unused == 0
    weights = [spec for node in report.graph for rec in node.calls
               if rec.call.op == "linear" for name, spec in rec.call.tensors.items()
               if name == "weight"]
    assert [(w.shape, w.dtype, w.itemsize) for w in weights] == [
        ((32, 16), "int8", 1), ((8, 32), "int8", 1)]


# ---- the trace flag, and code whose compile path needs more -----------------------------------

class MaskUnlessCompiling(nn.Module):
    """Switch Transformers' form: `if attention_mask is None and not is_torchdynamo_compiling():
    make one`; its compile path then fails without a mask. The capture runs it once more as plain
    eager code."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 8)

    def forward(self, x, mask=None):
        if mask is None and not torch.compiler.is_compiling():
            mask = torch.ones(x.shape[:-1], device=x.device)
        return self.fc(x) * mask[..., None]


def test_a_compile_path_that_fails_is_retried_as_eager_code():
    report = eager(MaskUnlessCompiling(), "2x3x8")
    assert report.totals.madds == 2 * 3 * 8 * 8
    assert not torch.compiler.is_compiling()


def test_switch_transformers():
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = transformers.SwitchTransformersModel(transformers.SwitchTransformersConfig(
            vocab_size=100, d_model=32, d_kv=16, d_ff=64, num_layers=1, num_decoder_layers=1,
            num_heads=2, num_experts=2)).eval()
    ids = torch.ones(2, 16, dtype=torch.int64)
    expected = oracle(model, ids, decoder_input_ids=ids[:, :8])
    report = eager(model, "2x16:int64", kwargs={"decoder_input_ids": "2x8:int64"})
    assert report.totals.madds == expected


class CausalEncoder(nn.Module):
    """The usual nn.TransformerEncoder use: a causal mask built inside the forward, which torch's
    _detect_is_causal_mask compares with its own (a value read, of known values here)."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.TransformerEncoder(
            nn.TransformerEncoderLayer(16, 2, 32, batch_first=True), 1)

    def forward(self, x):
        mask = nn.Transformer.generate_square_subsequent_mask(x.shape[1], device=x.device)
        return self.encoder(x, mask=mask)


def test_transformer_encoder_with_a_causal_mask_built_inside():
    torch.manual_seed(0)
    model = CausalEncoder().eval()
    expected = oracle(model, torch.randn(1, 10, 16), grad=True)
    assert expected == 4 * 10 * 16 * 16 + 2 * 10 * 10 * 16 + 2 * 10 * 16 * 32
    assert eager(model, "1x10x16").totals.madds == expected


@pytest.mark.filterwarnings("ignore")
def test_a_quantized_module_without_a_meta_equivalent_says_what_to_do():
    """Quantized conv, linear, add, cat and the activations run on their integer tensors
    (test_quantized.py); a quantized module costmodel has no equivalent for (BatchNorm2d left
    unfused) stops with one line that names the op and says what to do."""
    import torch.ao.nn.quantized as nnq

    model = nn.Sequential(nnq.Quantize(1.0, 0, torch.quint8), nnq.BatchNorm2d(3),
                          nnq.DeQuantize())
    with pytest.raises(costmodel.errors.AnalysisError) as info:
        costmodel.analyze(model, "1x3x8x8")
    message = str(info.value)
    assert "\n" not in message and "quantized::batch_norm2d has no meta kernel" in message
    assert "analyse the float model" in message
