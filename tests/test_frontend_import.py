"""The PyTorch importer on the model families users bring, each built small from constructors
with random weights (no downloads): every layer's MACs summed equal an independent count of
the forward pass, taken per ATen operator by the counter below (written here, not the
importer's code), and nothing that computes is left out."""

from __future__ import annotations

import math
import os
import warnings
from typing import Any

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402
from torch.utils._python_dispatch import TorchDispatchMode  # noqa: E402

from simulator.frontend.torch import import_torch  # noqa: E402
from simulator.workload.spec import parse_network  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")


class MacCounter(TorchDispatchMode):
    """MACs per ATen operator over one forward pass: conv = output elements x C_in/g x kh x kw;
    mm/addmm = M K N; bmm/baddbmm = B M K N; fused attention = B H L S (E + Ev); quantized
    linear / conv from their unpacked weights."""

    def __init__(self) -> None:
        super().__init__()
        self.macs = 0

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        name = func.__name__.split(".")[0]
        if func.namespace == "quantized" and name.startswith("linear"):
            w, _ = torch.ops.quantized.linear_unpack(args[1])
            self.macs += args[0].numel() // args[0].shape[-1] * w.numel()
        elif func.namespace == "quantized" and name.startswith("conv2d"):
            w, _ = torch.ops.quantized.conv2d_unpack(args[1])
            self.macs += out.numel() * w[0].numel()
        elif name in ("mm", "addmm"):
            a, b = (args[0], args[1]) if name == "mm" else (args[1], args[2])
            self.macs += a.shape[0] * a.shape[1] * b.shape[1]
        elif name in ("bmm", "baddbmm"):
            a, b = (args[0], args[1]) if name == "bmm" else (args[1], args[2])
            self.macs += a.shape[0] * a.shape[1] * a.shape[2] * b.shape[2]
        elif name == "convolution":
            self.macs += out.numel() * args[1][0].numel()
        elif name == "_native_multi_head_attention":
            q, k, d = args[0], args[1], args[3]
            lq, lk = q.numel() // d, k.numel() // d
            self.macs += (lq + 2 * lk) * d * d + lq * d * d + 2 * lq * k.shape[-2] * d
        elif name.startswith("_scaled_dot_product"):
            q, k, v = args[:3]
            self.macs += math.prod(q.shape[:-1]) * k.shape[-2] * (q.shape[-1] + v.shape[-1])
        return out


def count(model: nn.Module, x: Any) -> int:
    c = MacCounter()
    with torch.no_grad(), c:
        model(x)
    return c.macs


def imported_macs(model: nn.Module, x: Any) -> tuple[int, Any]:
    res = import_torch(model, x)
    wl = parse_network({"name": "m", "layers": [la.spec for la in res.layers]})
    return wl.macs, res


def check(model: nn.Module, x: Any) -> Any:
    model.eval()
    macs, res = imported_macs(model, x)
    assert macs == count(model, x[:1] if isinstance(x, torch.Tensor) else x)
    hidden = [n for n in res.notes if n.startswith("not simulated:")]  # unknown operators
    assert hidden == [], hidden
    return res


# ----------------------------------------------------------------------------- CNN families


class Basic(nn.Module):  # torchvision ResNet BasicBlock
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.down = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                   nn.BatchNorm2d(cout)) if stride != 1 or cin != cout else None)

    def forward(self, x: Any) -> Any:
        y = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(y + (self.down(x) if self.down is not None else x))


def resnet() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 8, 7, 2, 3, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.MaxPool2d(3, 2, 1), Basic(8, 8, 1), Basic(8, 16, 2),
                         nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(), nn.Linear(16, 10))


def vgg() -> nn.Module:  # torchvision VGG: features, AdaptiveAvgPool2d((7, 7)), classifier
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d((7, 7)),
                         nn.Flatten(), nn.Linear(8 * 49, 32), nn.ReLU(), nn.Dropout(),
                         nn.Linear(32, 10))


class Fire(nn.Module):  # SqueezeNet
    def __init__(self, cin: int, s: int, e: int) -> None:
        super().__init__()
        self.squeeze = nn.Conv2d(cin, s, 1)
        self.e1 = nn.Conv2d(s, e, 1)
        self.e3 = nn.Conv2d(s, e, 3, padding=1)

    def forward(self, x: Any) -> Any:
        x = F.relu(self.squeeze(x))
        return torch.cat([F.relu(self.e1(x)), F.relu(self.e3(x))], 1)


def squeezenet() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 8, 3, 2), nn.ReLU(), nn.MaxPool2d(3, 2, ceil_mode=True),
                         Fire(8, 4, 8), nn.MaxPool2d(3, 2, ceil_mode=True), Fire(16, 4, 8),
                         nn.Conv2d(16, 10, 1), nn.ReLU(), nn.AdaptiveAvgPool2d((1, 1)),
                         nn.Flatten())


class InvRes(nn.Module):  # MobileNetV2 / V3 inverted residual (depthwise)
    def __init__(self, c: int, act: type[nn.Module]) -> None:
        super().__init__()
        self.block = nn.Sequential(nn.Conv2d(c, 4 * c, 1), nn.BatchNorm2d(4 * c), act(),
                                   nn.Conv2d(4 * c, 4 * c, 3, padding=1, groups=4 * c),
                                   nn.BatchNorm2d(4 * c), act(), nn.Conv2d(4 * c, c, 1),
                                   nn.BatchNorm2d(c))

    def forward(self, x: Any) -> Any:
        return x + self.block(x)


def mobilenet() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.Hardswish(), InvRes(8, nn.ReLU6),
                         InvRes(8, nn.Hardswish), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(8, 10))


class LayerNorm2d(nn.LayerNorm):  # ConvNeXt / timm: LayerNorm over channels of NCHW
    def forward(self, x: Any) -> Any:
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class ConvNeXtBlock(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.dw = nn.Conv2d(c, c, 7, padding=3, groups=c)
        self.norm = nn.LayerNorm(c)
        self.pw1 = nn.Linear(c, 4 * c)
        self.pw2 = nn.Linear(4 * c, c)
        self.gamma = nn.Parameter(torch.ones(c))

    def forward(self, x: Any) -> Any:
        y = self.dw(x).permute(0, 2, 3, 1)
        y = self.pw2(F.gelu(self.pw1(self.norm(y)))) * self.gamma
        return x + y.permute(0, 3, 1, 2)


def convnext() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 16, 4, 4), LayerNorm2d(16), ConvNeXtBlock(16),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10))


# ----------------------------------------------------------------------------- transformers


class SdpaAttention(nn.Module):  # timm ViT / DeiT Attention: qkv Linear, SDPA, proj
    def __init__(self, d: int, heads: int) -> None:
        super().__init__()
        self.h = heads
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)

    def forward(self, x: Any) -> Any:
        b, n, d = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.h, d // self.h).permute(2, 0, 3, 1, 4)
        return self.proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, d))


class MatmulAttention(SdpaAttention):  # the same written with torch.matmul and softmax
    def forward(self, x: Any) -> Any:
        b, n, d = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.h, d // self.h).permute(2, 0, 3, 1, 4)
        a = torch.softmax(q @ k.transpose(-2, -1) * (d // self.h) ** -0.5, -1)
        return self.proj((a @ v).transpose(1, 2).reshape(b, n, d))


class ViTBlock(nn.Module):
    def __init__(self, d: int, attn: nn.Module) -> None:
        super().__init__()
        self.norm1, self.attn = nn.LayerNorm(d), attn
        self.norm2 = nn.LayerNorm(d)
        self.mlp = nn.Sequential(nn.Linear(d, 2 * d), nn.GELU(), nn.Linear(2 * d, d))

    def forward(self, x: Any) -> Any:
        if isinstance(self.attn, nn.MultiheadAttention):
            y = self.norm1(x)
            x = x + self.attn(y, y, y, need_weights=False)[0]
        else:
            x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class ViT(nn.Module):
    def __init__(self, kind: str, d: int = 16) -> None:
        super().__init__()
        self.patch = nn.Conv2d(3, d, 4, 4)
        self.cls = nn.Parameter(torch.zeros(1, 1, d))
        self.pos = nn.Parameter(torch.zeros(1, 17, d))
        attn = {"mha": lambda: nn.MultiheadAttention(d, 2, batch_first=True),
                "sdpa": lambda: SdpaAttention(d, 2), "matmul": lambda: MatmulAttention(d, 2)}
        self.blocks = nn.Sequential(*(ViTBlock(d, attn[kind]()) for _ in range(2)))
        self.head = nn.Linear(d, 10)

    def forward(self, x: Any) -> Any:
        x = self.patch(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], 1) + self.pos
        return self.head(self.blocks(x)[:, 0])


class MobileViTish(nn.Module):
    """MobileViT's unfold: (B, C, H, W) -> (B * P, N, C) patches through a transformer, so a
    linear's leading dims are not (batch, tokens): 4 patch positions x 16 patches."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.tf = ViTBlock(8, SdpaAttention(8, 2))
        self.head = nn.Linear(8, 10)

    def forward(self, x: Any) -> Any:
        y = self.conv(x)
        b, c, h, w = y.shape
        p = y.reshape(b, c, h // 2, 2, w // 2, 2).permute(0, 3, 5, 2, 4, 1)
        p = self.tf(p.reshape(b * 4, (h // 2) * (w // 2), c))
        return self.head(p.mean(1).reshape(b, 4, c).mean(1))


def seq_first_encoder() -> nn.Module:
    layer = nn.TransformerEncoderLayer(16, 2, 32, dropout=0.0, batch_first=False)
    return nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)


FAMILIES = {
    "resnet": (resnet, (2, 3, 32, 32)), "vgg": (vgg, (2, 3, 28, 28)),
    "squeezenet": (squeezenet, (2, 3, 33, 33)), "mobilenet": (mobilenet, (2, 3, 16, 16)),
    "convnext": (convnext, (2, 3, 16, 16)), "vit_mha": (lambda: ViT("mha"), (2, 3, 16, 16)),
    "vit_sdpa": (lambda: ViT("sdpa"), (2, 3, 16, 16)),
    "deit_matmul": (lambda: ViT("matmul"), (2, 3, 16, 16)),
    "mobilevit": (MobileViTish, (2, 3, 8, 8)),
}


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_family_macs_equal_an_independent_count(family: str) -> None:
    torch.manual_seed(0)
    build, shape = FAMILIES[family]
    check(build(), torch.randn(*shape))


def test_sequence_first_encoder_counts_tokens_not_batch() -> None:
    torch.manual_seed(0)
    model = seq_first_encoder().eval()
    x = torch.randn(7, 2, 16)  # (tokens, batch, d): one example is x[:, :1]
    res = import_torch(model, x, batch_dim=1)
    macs = parse_network({"name": "m", "layers": [la.spec for la in res.layers]}).macs
    assert macs == count(model, x[:, :1])
    lin = next(la for la in res.layers if la.spec["op"] == "linear")
    assert lin.spec["tokens"] == 7


def test_vgg_and_squeezenet_pools_are_exact() -> None:
    res = check(squeezenet(), torch.randn(1, 3, 33, 33))
    pools = [la.spec for la in res.layers if la.spec["op"] == "maxpool"]
    assert pools[0]["ceil_mode"] is True
    # 33 -> conv 3x3 s2 -> 16 -> ceil((16 - 3) / 2) + 1 = 8 (floor mode: 7)
    wl = parse_network({"name": "p", "layers": [pools[0]]})
    assert wl.layers[0].ofmap_elements == 8 * 8 * 8
    res = check(vgg(), torch.randn(1, 3, 28, 28))
    adaptive = [la.spec for la in res.layers if la.spec["op"] == "avgpool"]
    assert adaptive and adaptive[0]["kernel"] == 2  # 14x14 -> 7x7


def test_attention_layers_are_named_and_causal_work_stated() -> None:
    class Causal(SdpaAttention):
        def forward(self, x: Any) -> Any:
            b, n, d = x.shape
            q, k, v = self.qkv(x).reshape(b, n, 3, self.h, d // self.h).permute(2, 0, 3, 1, 4)
            o = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            return self.proj(o.transpose(1, 2).reshape(b, n, d))

    res = check(Causal(8, 2), torch.randn(1, 4, 8))
    names = [la.name for la in res.layers]
    assert names[:2] == ["qkv", "qk"] and "av" in names and names[-1] == "proj"
    # 4 queries, 4 keys, top-left causal: 1 + 2 + 3 + 4 = 10 of 16 scores
    assert any("62.5% of the Q K^T and P V MACs are effective" in n for n in res.notes)


def test_multihead_attention_out_proj_and_packed_in_proj() -> None:
    res = check(ViT("mha"), torch.randn(1, 3, 16, 16))
    names = {la.name: la for la in res.layers}
    assert "blocks.0.attn.out_proj" in names
    assert names["blocks.0.attn.in_proj"].param == "blocks.0.attn.in_proj_weight"


# ----------------------------------------------------------------------------- Hugging Face


def _hf(kind: str) -> tuple[nn.Module, Any]:
    tf = pytest.importorskip("transformers")
    torch.manual_seed(0)
    ids = torch.randint(0, 50, (2, 6))
    if kind == "gpt2":
        cfg = tf.GPT2Config(vocab_size=50, n_positions=16, n_embd=16, n_layer=2, n_head=2)
        return tf.GPT2LMHeadModel(cfg), ids
    if kind == "bert":
        cfg = tf.BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=2,
                            num_attention_heads=2, intermediate_size=32,
                            max_position_embeddings=16)
        return tf.BertModel(cfg), ids
    cfg = tf.LlamaConfig(vocab_size=50, hidden_size=16, intermediate_size=32,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=16)
    return tf.LlamaForCausalLM(cfg), ids


@pytest.mark.parametrize("kind", ["gpt2", "bert", "llama"])
def test_hugging_face_models(kind: str) -> None:
    model, ids = _hf(kind)
    res = check(model.eval(), ids)
    ops = {la.spec["op"] for la in res.layers}
    assert {"linear", "vector"} <= ops
    assert any(la.spec.get("label") == "embedding" or "embed" in la.name for la in res.layers)
    if kind == "gpt2":  # Conv1D weights are stored (in, out); lm_head tied to wte
        attn = next(la for la in res.layers if la.name.endswith("attn.c_attn"))
        assert attn.transposed and attn.weight.shape == (48, 16)
        assert any(la.name == "lm_head" for la in res.layers)


def test_llama_import_equals_the_llm_spec() -> None:
    """The same decoder through the importer and as an LLM spec: prefill with every
    position's logits (as the HF forward computes them) has the same MACs."""
    from simulator.workload.llm import parse_llm, phases

    model, ids = _hf("llama")
    macs, _ = imported_macs(model.eval(), ids[:1])
    spec = parse_llm({"name": "l", "kind": "decoder", "layers": 2, "d_model": 16, "heads": 4,
                      "kv_heads": 2, "ffn": "swiglu", "ffn_hidden": 32, "vocab": 50,
                      "norm": "rmsnorm", "positions": "rope", "prefill_logits": "all",
                      "phases": {"prefill": {"tokens": 6}}})
    pre = phases(spec)[0]
    assert macs == sum(la.macs * rep for la, rep in pre.entries)


# ----------------------------------------------------------------------------- quantised


def test_torch_ao_static_and_dynamic_quantised_models() -> None:
    from torch.ao import quantization as tq

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.q, self.dq = tq.QuantStub(), tq.DeQuantStub()
            self.conv = nn.Conv2d(3, 4, 3)
            self.fc = nn.Linear(36, 5)

        def forward(self, x: Any) -> Any:
            return self.dq(self.fc(torch.relu(self.conv(self.q(x))).flatten(1)))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net = Net().eval()
        net.qconfig = tq.get_default_qconfig("fbgemm")
        prepared = tq.prepare(net)
        prepared(torch.randn(4, 3, 5, 5))
        static = tq.convert(prepared)
        dynamic = tq.quantize_dynamic(resnet().eval(), {nn.Linear}, dtype=torch.qint8)
    res = check(static, torch.randn(2, 3, 5, 5))
    gemms = [la for la in res.layers if la.spec["op"] in ("conv2d", "linear")]
    assert [la.name for la in gemms] == ["conv", "fc"]
    assert all(la.fields["bits"] == 8 and la.act_bits == 8 for la in gemms)
    res = check(dynamic, torch.randn(2, 3, 32, 32))  # the dynamic fc is not dropped
    fc = [la for la in res.layers if la.spec["op"] == "linear"]
    assert len(fc) == 1 and fc[0].fields["bits"] == 8


def test_brevitas_quant_layers_read_their_bits() -> None:
    qnn = pytest.importorskip("brevitas.nn")
    model = nn.Sequential(qnn.QuantConv2d(3, 4, 3, weight_bit_width=4), nn.ReLU(),
                          nn.Flatten(), qnn.QuantLinear(4 * 36, 5, bias=True,
                                                        weight_bit_width=3)).eval()
    res = check(model, torch.randn(2, 3, 8, 8))
    gemms = {la.name: la for la in res.layers if la.spec["op"] in ("conv2d", "linear")}
    assert set(gemms) == {"0", "3"}
    assert gemms["0"].param == "0.weight"
    assert (gemms["0"].fields["bits"], gemms["3"].fields["bits"]) == (4, 3)
    # the fake quantisation of the weights runs once, not per inference: not a layer
    assert all("weight_quant" not in la.name for la in res.layers)


class TinyLM(nn.Module):
    """nn.Embedding, nn.RMSNorm, SDPA with is_causal, a tied lm_head."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(40, 16)
        self.norm = nn.RMSNorm(16)
        self.attn = SdpaAttention(16, 2)
        self.head = nn.Linear(16, 40, bias=False)
        self.head.weight = self.embed.weight

    def forward(self, ids: Any) -> Any:
        x = self.embed(ids)
        return self.head(self.norm(x + self.attn(x)))


def test_embedding_rmsnorm_and_tied_head() -> None:
    torch.manual_seed(0)
    res = check(TinyLM(), torch.randint(0, 40, (2, 5)))
    by = {la.name: la for la in res.layers}
    assert by["embed"].spec["label"] == "embedding" and by["norm"].spec["label"] == "rmsnorm"
    assert by["head"].param == "head.weight" and by["head"].spec["tokens"] == 5


def test_torchao_weight_only_int8() -> None:
    pytest.importorskip("torchao")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from torchao.quantization import Int8WeightOnlyConfig, quantize_

        model = nn.Sequential(nn.Linear(32, 16), nn.ReLU(), nn.Linear(16, 4)).eval()
        quantize_(model, Int8WeightOnlyConfig())
        res = check(model, torch.randn(2, 32))
    lins = [la for la in res.layers if la.spec["op"] == "linear"]
    assert [la.name for la in lins] == ["0", "2"]
    # int8 per output channel, an fp32 scale and an 8-bit zero point per 32-value row
    assert lins[0].fields == {"bits": 8, "scheme": "int", "scale_bits": (32 + 8) / 32,
                              "dequantize": True}
