"""PyTorch importer: the ATen operators of one forward pass -> network-spec layers.

**Why a dispatch-mode trace** (``torch.utils._python_dispatch.TorchDispatchMode``) rather than
forward hooks or ``torch.export``: hooks see modules, not computation, so attention written
as ``F.scaled_dot_product_attention`` or ``torch.matmul`` in a ``forward`` and
``nn.MultiheadAttention`` (which never calls its ``out_proj``) vanished; ``torch.export``
needs a graph-capturable model (no data-dependent Python, no quantised tensors), which many
user models are not. The dispatch mode runs the model as it is, eagerly, and sees every ATen
operator with its real tensors, in the order it runs; forward pre/post hooks on every module
only keep the stack of modules the operator is called from, which names the layers.

Every GEMM operator (:mod:`simulator.frontend.torch_ops`) becomes a layer with the shapes of
**one example**: the trace runs on the first calibration example alone, so no rule about which
dimension is the batch is needed (sequence-first encoders, MobileViT's patch folding). A
second pass over the whole calibration batch measures each GEMM's input-activation density
(matched by position: a model whose operators change with the batch size gets a note and the
one-example densities). A layer computed with a model parameter is a ``linear`` / ``conv2d``
named after the parameter (``fc1`` for ``fc1.weight``, ``attn.in_proj`` for
``nn.MultiheadAttention``'s ``in_proj_weight``), which recipes select; other GEMMs are
``matmul`` layers named ``<module>.<op>``. Vector operators in a leaf module call are fused
into one vector layer named after the module (``ln_1``, ``relu1``); elsewhere each is its own
layer (``layer1.0.add``). Views, creation ops and anything unknown are listed in the notes by
operator, with their share of the model's MACs (from ``torch.utils.flop_counter``'s formulas,
so an unknown computing operator shows).
"""

from __future__ import annotations

import weakref
from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from simulator.errors import SimulatorError
from simulator.frontend.aten import CREATION, POOLS, VIEWS
from simulator.frontend.imported import ImportedLayer, ImportResult
from simulator.frontend.torch_layers import Rec, fuse, names
from simulator.frontend.torch_ops import (
    SDPA,
    Found,
    attention,
    gemm,
    native_mha,
    pool,
    quantized,
    tensors,
    torchao_fields,
    vector,
)


class ModelTraceError(SimulatorError):
    """A model cannot be traced into layers (unsupported operator, failed forward pass)."""


class _Tracer(TorchDispatchMode):
    """Records what every operator of a forward pass is (module docstring)."""

    def __init__(self, model: nn.Module, stack: list[tuple[str, int]], one_example: bool) -> None:
        super().__init__()
        self.stack = stack
        self.one_example = one_example
        self.recs: list[Rec] = []
        self.other: Counter[str] = Counter()
        self.other_macs: Counter[str] = Counter()
        self.views: Counter[str] = Counter()
        self.const: dict[int, weakref.ref[torch.Tensor]] = {}
        self.precomputed: Counter[str] = Counter()
        self.mods = dict(model.named_modules())
        self.leaves = {n for n, m in self.mods.items() if not any(True for _ in m.children())}
        self.params: dict[int, list[str]] = {}
        self.named = dict(model.named_parameters(remove_duplicate=False))
        for pname, p in self.named.items():
            self.params.setdefault(_storage(p), []).append(pname)

    def is_param(self, t: Any) -> bool:
        return isinstance(t, torch.Tensor) and _storage(t) in self.params

    def mark(self, value: Any) -> None:
        """Remember tensors computed from weights and constants only (precomputable once)."""
        for t in tensors(value):
            self.const[id(t)] = weakref.ref(t)

    def is_const(self, value: Any) -> bool:
        """All tensor inputs are weights, buffers or made from them (or there are none)."""
        return all((r := self.const.get(id(t))) is not None and r() is t
                   for t in tensors(value))

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple[Any, ...] = (),
                           kwargs: dict[str, Any] | None = None) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        name = func.__name__.split(".")[0]
        ns = func.namespace
        if self.is_const(list(args) + list(kwargs.values())):
            self.mark(out)
            if name not in VIEWS and name not in CREATION:
                self.precomputed[f"{ns}.{name}"] += 1
            return out  # on weights / constants only: done once, not per inference
        module, call = self.stack[-1] if self.stack else ("", 0)
        found: list[Found] | None
        if ns == "quantized":
            found = quantized(name, args)
            if found is None:
                one = vector(name, args, kwargs, out)
                found = [one] if one is not None else None
        elif name in SDPA:
            found = attention(name, args, kwargs)
        elif name == "_native_multi_head_attention":
            found = native_mha(args, kwargs)
        elif name in POOLS:
            one = pool(name, args, out)
            found = [one] if one is not None else None
        elif name in VIEWS or name in CREATION:
            self.views[name] += 1
            return out
        else:
            found = gemm(name, args, self.is_param)
            if found is None:
                one = vector(name, args, kwargs, out)
                found = [one] if one is not None else None
        if found is None:
            self.other[f"{ns}.{name}"] += 1
            self.other_macs[f"{ns}.{name}"] += _flop_macs(func, args, kwargs, out)
            return out
        for f in found:
            if self.one_example and f.batch != 1:
                raise ModelTraceError(f"module {module or '<model>'!r}: a convolution runs on "
                                      f"{f.batch} tensors for one input example (a batch "
                                      f"made inside the model is not supported)")
            self.recs.append(Rec(f, module, call, module in self.leaves,
                                  self._param(f, module)))
        return out

    def _param(self, f: Found, module: str) -> str | None:
        """The parameter a weight GEMM reads (the op's own module's, for tied weights), or the
        ``weight`` of its leaf module when that module computes with a transformed copy of it
        (fake-quantised weights: Brevitas, weight normalisation)."""
        if f.kind != "gemm":
            return None
        if f.spec["op"] == "matmul":
            return self._module_weight(f, module)
        if f.source is None:  # torch.ao quantised modules: named after the module
            return None
        names = self.params.get(_storage(f.source))
        if not names:
            return self._module_weight(f, module)
        own = [n for n in names if n.rpartition(".")[0] == module]
        chosen = (own or names)[0]
        p, w = self.named[chosen], f.weight
        if w is None:
            return chosen
        # the parameter is stored as the weight (out, in) or transposed (GPT-2's Conv1D), or
        # the weight is a block of its rows (nn.MultiheadAttention's packed in_proj_weight)
        same = tuple(w.stride()) == tuple(p.stride())
        if tuple(w.shape) == tuple(p.shape) and same:
            return chosen
        if tuple(w.shape) == tuple(p.shape)[::-1] and not same:
            f.transposed = True
            return chosen
        if same and w.dim() >= 2 and tuple(w.shape[1:]) == tuple(p.shape[1:]):
            start = (w.storage_offset() - p.storage_offset()) // p.stride(0)
            f.rows = (start, start + int(w.shape[0]))
            return chosen
        return None

    def _module_weight(self, f: Found, module: str) -> str | None:
        mod = self.mods.get(module)
        w = mod._parameters.get("weight") if mod is not None else None
        if not isinstance(w, nn.Parameter):
            return None
        f.fields.update(torchao_fields(w))
        qw = getattr(mod, "quant_weight", None)
        if callable(qw):  # Brevitas: the bit width its weight quantiser applies
            try:
                with torch._C.DisableTorchFunction():
                    f.fields["bits"] = int(qw().bit_width)
            except Exception:  # a quantiser without a bit width: leave the bits unknown
                pass
        if f.spec["op"] == "conv2d":
            return f"{module}.weight" if f.weight is not None and \
                tuple(w.shape) == tuple(f.weight.shape) else None
        if f.spec["op"] == "matmul" and f.spec["batch"] == 1 and f.act is not None:
            m, k, n = f.spec["M"], f.spec["K"], f.spec["N"]
            if tuple(w.shape) in ((n, k), (k, n)):
                b = f.act  # rebuild as a linear layer on the module's weight
                f.spec = {"op": "linear", "in_features": k, "out_features": n, "tokens": m}
                f.label = "linear"
                f.weight = w.detach().t() if tuple(w.shape) == (k, n) else w.detach()
                f.transposed = tuple(w.shape) == (k, n) and k != n
                f.act = b
                return f"{module}.weight"
        return None


def _storage(t: torch.Tensor) -> int:
    try:
        return int(t.untyped_storage().data_ptr())
    except (RuntimeError, NotImplementedError):
        return -1


def _flop_macs(func: Any, args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> int:
    """MACs of an operator the importer does not simulate, by torch's flop formulas (0 when
    torch has none: a non-computing operator)."""
    from torch.utils.flop_counter import flop_registry

    fn = flop_registry.get(func.overloadpacket)
    if fn is None:
        return 0

    def shape(v: Any) -> Any:
        return v.shape if isinstance(v, torch.Tensor) else v

    try:
        o = out if not isinstance(out, (list, tuple)) else out[0]
        return int(fn(*[shape(a) for a in args], **{k: shape(v) for k, v in kwargs.items()},
                      out_shape=shape(o))) // 2
    except Exception:  # a formula that does not fit this call: count it as unknown
        return 0


def _run(model: nn.Module, x: Any, one_example: bool = True) -> _Tracer:
    stack: list[tuple[str, int]] = []
    calls = [0]
    handles = []

    def push(name: str) -> Callable[..., None]:
        def pre(mod: nn.Module, args: Any) -> None:
            calls[0] += 1
            stack.append((name, calls[0]))
        return pre

    def pop(mod: nn.Module, args: Any, out: Any) -> None:
        if stack:
            stack.pop()

    for name, mod in model.named_modules():
        if name:
            handles.append(mod.register_forward_pre_hook(push(name)))
            handles.append(mod.register_forward_hook(pop, always_call=True))
    tracer = _Tracer(model, stack, one_example)
    tracer.mark([*model.parameters(), *model.buffers()])
    for p in model.parameters():  # a tensor subclass's inner tensors (torchao's qdata, scale)
        if hasattr(p, "__tensor_flatten__"):
            tracer.mark([getattr(p, n) for n in p.__tensor_flatten__()[0]])
    try:
        with torch.no_grad(), tracer:
            model(x)
    except ModelTraceError:
        raise
    except Exception as exc:  # a user model may raise anything
        shape = list(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ModelTraceError(f"model failed on the calibration batch (input of shape {shape}): "
                              f"{type(exc).__name__}: {exc}") from exc
    finally:
        for h in handles:
            h.remove()
    return tracer


def _density(t: torch.Tensor | None) -> float:
    if t is None or t.numel() == 0:
        return 1.0
    t = t.dequantize() if t.is_quantized else t
    return float(torch.count_nonzero(t).item() / t.numel())


def _mask(f: Found) -> np.ndarray | None:
    """The activation mask of one example in the layer's operand layout."""
    if f.act is None or f.kind != "gemm":
        return None
    a = f.act.dequantize() if f.act.is_quantized else f.act
    m = a.detach().cpu().numpy() != 0
    op = f.spec["op"]
    if op == "linear":
        return m.reshape(-1, f.spec["in_features"])
    if op == "matmul":
        return m.reshape(f.spec["batch"], f.spec["M"], f.spec["K"]) if \
            m.size == f.spec["batch"] * f.spec["M"] * f.spec["K"] else None
    return m


def import_torch(model: nn.Module, calibration: Any,
                 on_batch: Callable[[], None] | None = None, batch_dim: int = 0, *,
                 mask_samples: int = 0) -> ImportResult:
    """Trace ``model`` on the calibration inputs (module docstring) and return its layers.

    ``batch_dim``: the dimension of ``calibration`` that indexes examples (1 for a
    sequence-first ``(tokens, batch, features)`` encoder); the trace takes one example along it.
    ``mask_samples``: also trace the first that many examples one by one and keep each GEMM's
    input masks over them (``ImportedLayer.act_mask_set``: runtime activation sparsity per
    input, matched by position like the batch densities).
    """
    model.eval()
    one = calibration.narrow(batch_dim, 0, 1) if isinstance(calibration, torch.Tensor) \
        else calibration
    tr = _run(model, one)
    recs = fuse(tr.recs)
    layer_names = names(recs)
    notes: list[str] = []
    layers = []
    for name, r in zip(layer_names, recs, strict=True):
        f = r.found
        w = None
        if f.weight is not None:
            wt = f.weight.dequantize() if f.weight.is_quantized or hasattr(f.weight, "qdata") \
                else f.weight
            w = wt.detach().cpu().numpy().copy()
        layers.append(ImportedLayer(name, {"name": name, **f.spec}, _density(f.act), _mask(f),
                                    w, param=r.param, transposed=f.transposed, rows=f.rows,
                                    fields=dict(f.fields), act_bits=f.act_bits,
                                    module=r.module))
        if f.note:
            notes.append(f"{name}: {f.note}")
    gemms = [la for la in layers if la.spec["op"] in ("conv2d", "linear", "matmul")]
    if isinstance(calibration, torch.Tensor) and calibration.shape[batch_dim] > 1 and gemms:
        full = _run(model, calibration, one_example=False)
        batch = [r for r in fuse(full.recs) if r.found.kind == "gemm"]
        if len(batch) == len(gemms):
            for la, r in zip(gemms, batch, strict=True):
                la.act_density = _density(r.found.act)
        else:
            notes.append(f"the model runs {len(batch)} GEMMs on the calibration batch but "
                         f"{len(gemms)} on one example: activation densities are one "
                         f"example's")
    if mask_samples > 0 and isinstance(calibration, torch.Tensor) and gemms:
        _mask_sets(model, calibration, batch_dim, mask_samples, gemms, notes)
    if on_batch is not None:
        on_batch()
    if not gemms:
        raise ModelTraceError("model has no convolution, linear or matmul operator reached by "
                              "forward()")
    total = sum(_macs(la.spec) for la in gemms)
    unknown = sum(tr.other_macs.values())
    for op, n in sorted(tr.other.items()):
        macs = tr.other_macs[op]
        share = macs / (total + unknown) if total + unknown else 0.0
        notes.append(f"not simulated: {op} x{n} ({macs:,} MACs, {share:.2%} of the model's)")
    if tr.precomputed:
        notes.append("not simulated (computed from weights and constants only, once, not per "
                     "inference: weight fake-quantisation, RoPE tables, masks): "
                     + ", ".join(f"{k} x{v}" for k, v in sorted(tr.precomputed.items())))
    if tr.views:
        notes.append("not simulated (views and tensor creation: no data movement, 0 MACs): "
                     + ", ".join(f"{k} x{v}" for k, v in sorted(tr.views.items())))
    return ImportResult(layers, notes)


def _mask_sets(model: nn.Module, calibration: torch.Tensor, batch_dim: int, samples: int,
               gemms: list[ImportedLayer], notes: list[str]) -> None:
    """``act_mask_set`` of every GEMM from one trace per calibration example."""
    n = min(samples, calibration.shape[batch_dim])
    per: list[list[np.ndarray | None]] = [[] for _ in gemms]
    for i in range(n):
        recs = [r for r in fuse(_run(model, calibration.narrow(batch_dim, i, 1)).recs)
                if r.found.kind == "gemm"]
        if len(recs) != len(gemms):
            notes.append(f"example {i} runs {len(recs)} GEMMs, not {len(gemms)}: no "
                         f"per-sample masks")
            return
        for j, r in enumerate(recs):
            per[j].append(_mask(r.found))
    for la, masks in zip(gemms, per, strict=True):
        found = [m for m in masks if m is not None]
        if found and len(found) == len(masks) and all(m.shape == found[0].shape for m in found):
            la.act_mask_set = np.stack(found)


def _macs(spec: dict[str, Any]) -> int:
    from simulator.workload.spec import parse_network

    return parse_network({"name": "x", "layers": [{"name": "x", **spec}]}).layers[0].macs
