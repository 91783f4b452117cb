"""Network spec files (``workloads/networks/*.yaml``): validation and lowering to layers.

Every layer op is a frozen pydantic model with ``extra="forbid"`` whose ``lower`` method
produces the :class:`~simulator.workload.layer.Layer` the hardware sees (lowering rules in
:mod:`simulator.workload.layer`). :func:`parse_network` reports every error of a file at once, each
with its layer path (``layers[3] (conv1).kernel``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    model_validator,
)

from simulator.errors import WorkloadError
from simulator.registry import validate_file
from simulator.workload.approx import ApproxSpec, FunctionApprox
from simulator.workload.dynamic import ExitSpec
from simulator.workload.geometry import conv_out, pair, touched
from simulator.workload.layer import NETWORK_INPUT, Layer, Workload
from simulator.workload.operand_spec import COMPRESSION_FIELDS, GemmSpec, SpecBase

PosInt = Annotated[int, Field(gt=0, strict=True)]
NonNegInt = Annotated[int, Field(ge=0, strict=True)]
Pair = PosInt | tuple[PosInt, PosInt]
NonNegPair = NonNegInt | tuple[NonNegInt, NonNegInt]

#: Primitive vector operations per output element of each element-wise op (assumed counts;
#: the SIMD unit does one op per lane per cycle): add/mul/relu 1; softmax 4 (max, exp,
#: sum, divide); layernorm 7 (mean add, subtract, square, variance add, rsqrt-multiply,
#: scale, shift); gelu 7 (tanh form: x^3, multiply-add, tanh, add, two multiplies, ...);
#: lrn 7 (five squared terms over a 5-channel window, sum, power-divide); sub/div/exp/tanh/
#: copy 1 (tanh and exp on the LUT unit); sigmoid 3 (exp, add, divide); silu 4 (sigmoid and a
#: multiply); swiglu 5 (silu of the gate times the up projection); rmsnorm 4 (square,
#: accumulate, normalising multiply, gain multiply; the per-row rsqrt amortised); rope 3 (two
#: multiplies by the cached cos / sin and an add, Su et al. 2021 eq. 34); batchnorm 2 (scale and
#: shift, inference); groupnorm 7 (as layernorm); hardswish 3.
ELEMENTWISE_OPS: dict[str, int] = {"add": 1, "mul": 1, "relu": 1, "softmax": 4,
                                   "layernorm": 7, "gelu": 7, "lrn": 7, "sub": 1, "div": 1,
                                   "exp": 1, "tanh": 1, "copy": 1, "sigmoid": 3, "silu": 4,
                                   "swiglu": 5, "rmsnorm": 4, "rope": 3, "batchnorm": 2,
                                   "groupnorm": 7, "hardswish": 3}
#: Number of input tensors of each element-wise op.
ELEMENTWISE_INPUTS: dict[str, int] = {"add": 2, "mul": 2, "sub": 2, "div": 2, "swiglu": 2}


class Conv2dSpec(GemmSpec):
    op: Literal["conv2d"]
    in_channels: PosInt
    out_channels: PosInt
    in_h: PosInt
    in_w: PosInt
    kernel: Pair
    stride: Pair = 1
    padding: NonNegPair = 0
    dilation: Pair = 1
    groups: PosInt = 1

    @model_validator(mode="after")
    def _check(self) -> Conv2dSpec:
        if self.in_channels % self.groups or self.out_channels % self.groups:
            raise ValueError(f"groups ({self.groups}) must divide in_channels "
                             f"({self.in_channels}) and out_channels ({self.out_channels})")
        self._check_filters(self.out_channels)
        if min(self.out_hw) <= 0:
            raise ValueError(f"kernel {self.kernel} (dilation {self.dilation}) does not fit the "
                             f"padded input {self.in_h}x{self.in_w} (padding {self.padding})")
        return self

    @property
    def out_hw(self) -> tuple[int, int]:
        (kh, kw), (sh, sw) = pair(self.kernel), pair(self.stride)
        (ph, pw), (dh, dw) = pair(self.padding), pair(self.dilation)
        return conv_out(self.in_h, kh, sh, ph, dh), conv_out(self.in_w, kw, sw, pw, dw)

    def lower(self, batch: int) -> Layer:
        ho, wo = self.out_hw
        kh, kw = pair(self.kernel)
        (sh, sw), (ph, pw), (dh, dw) = pair(self.stride), pair(self.padding), pair(
            self.dilation)
        g = self.groups
        rows = touched(self.in_h, ho, kh, sh, ph, dh)
        cols = touched(self.in_w, wo, kw, sw, pw, dw)
        return Layer(self.name, self.op, "gemm", M=batch * ho * wo,
                     K=self.in_channels // g * kh * kw, N=self.out_channels // g, count=g,
                     ifmap_elements=batch * self.in_channels * rows * cols,
                     filter_elements=self.out_channels * self.in_channels // g * kh * kw,
                     ofmap_elements=batch * self.out_channels * ho * wo,
                     dims=self.model_dump(exclude=COMPRESSION_FIELDS),
                     weight=self.weight_operand(), activation=self.act_operand())


class LinearSpec(GemmSpec):
    op: Literal["linear"]
    in_features: PosInt
    out_features: PosInt
    tokens: PosInt = 1

    @model_validator(mode="after")
    def _check(self) -> LinearSpec:
        self._check_filters(self.out_features)
        return self

    def lower(self, batch: int) -> Layer:
        m = batch * self.tokens
        return Layer(self.name, self.op, "gemm", M=m, K=self.in_features, N=self.out_features,
                     ifmap_elements=m * self.in_features,
                     filter_elements=self.in_features * self.out_features,
                     ofmap_elements=m * self.out_features,
                     dims=self.model_dump(exclude=COMPRESSION_FIELDS),
                     weight=self.weight_operand(), activation=self.act_operand())


class MatmulSpec(GemmSpec):
    op: Literal["matmul"]
    M: PosInt
    K: PosInt
    N: PosInt
    batch: PosInt = 1

    @model_validator(mode="after")
    def _check(self) -> MatmulSpec:
        if self.weight_filter_bits is not None or self.weight_block is not None:
            raise ValueError("a matmul's right operand is an activation: weight_filter_bits "
                             "and circulant blocks apply to weights only")
        return self

    def lower(self, batch: int) -> Layer:
        c = self.batch * batch
        return Layer(self.name, self.op, "gemm", M=self.M, K=self.K, N=self.N, count=c,
                     ifmap_elements=c * self.M * self.K, filter_elements=c * self.K * self.N,
                     ofmap_elements=c * self.M * self.N, filter_is_weight=False,
                     dims=self.model_dump(exclude=COMPRESSION_FIELDS),
                     weight=self.weight_operand(), activation=self.act_operand())


class PoolSpec(SpecBase):
    op: Literal["maxpool", "avgpool"]
    channels: PosInt
    in_h: PosInt
    in_w: PosInt
    kernel: Pair
    stride: Pair | None = None
    padding: NonNegPair = 0
    #: PyTorch's ``ceil_mode``: ``ceil((H + 2p - k) / s) + 1`` outputs, minus one when the last
    #: window would start in the right padding (``torch.nn.MaxPool2d`` documentation)
    ceil_mode: bool = False

    @property
    def out_hw(self) -> tuple[int, int]:
        (kh, kw), (ph, pw) = pair(self.kernel), pair(self.padding)
        sh, sw = pair(self.stride) if self.stride is not None else (kh, kw)
        return (pool_out(self.in_h, kh, sh, ph, self.ceil_mode),
                pool_out(self.in_w, kw, sw, pw, self.ceil_mode))

    @model_validator(mode="after")
    def _check(self) -> PoolSpec:
        if min(self.out_hw) <= 0:
            raise ValueError(f"kernel {self.kernel} does not fit the input {self.in_h}x{self.in_w}")
        return self

    def lower(self, batch: int) -> Layer:
        ho, wo = self.out_hw
        kh, kw = pair(self.kernel)
        out = batch * self.channels * ho * wo
        # max: kh*kw compares per output; avg: kh*kw adds and one scaling multiply
        ops = out * (kh * kw + (self.op == "avgpool"))
        return Layer(self.name, self.op, "vector", ifmap_elements=batch * self.channels
                     * self.in_h * self.in_w, ofmap_elements=out, vector_ops=ops,
                     dims=self.model_dump(exclude={"name", "op", "inputs"}))


class GlobalPoolSpec(SpecBase):
    op: Literal["global_avgpool"]
    channels: PosInt
    in_h: PosInt
    in_w: PosInt

    def lower(self, batch: int) -> Layer:
        n_in = batch * self.channels * self.in_h * self.in_w
        return Layer(self.name, self.op, "vector", ifmap_elements=n_in,
                     ofmap_elements=batch * self.channels,
                     vector_ops=n_in + batch * self.channels,
                     dims=self.model_dump(exclude={"name", "op", "inputs"}))


class ElementwiseSpec(SpecBase):
    op: Literal["add", "mul", "relu", "gelu", "softmax", "layernorm", "lrn", "sub", "div", "exp",
                "tanh", "copy", "sigmoid", "silu", "swiglu", "rmsnorm", "rope", "batchnorm",
                "groupnorm", "hardswish"]
    shape: Annotated[list[PosInt], Field(min_length=1)]
    #: the nonlinearity computed by segments or a table (simulator.workload.approx)
    approx: ApproxSpec | None = None

    @model_validator(mode="after")
    def _check(self) -> ElementwiseSpec:
        _approx(self.approx, self.op)
        return self

    def lower(self, batch: int) -> Layer:
        n = batch
        for s in self.shape:
            n *= s
        return Layer(self.name, self.op, "vector",
                     ifmap_elements=n * ELEMENTWISE_INPUTS.get(self.op, 1), ofmap_elements=n,
                     vector_ops=n * ELEMENTWISE_OPS[self.op],
                     dims=self.model_dump(exclude={"name", "op", "inputs", "approx"}),
                     approx=_approx(self.approx, self.op))


def _approx(spec: ApproxSpec | None, function: str) -> FunctionApprox | None:
    return None if spec is None else spec.build(function)


class VectorSpec(SpecBase):
    """A run of element-wise / reduction ops on the vector unit with its exact counts, as an
    importer measured them (``label`` says what it computes, e.g. ``rmsnorm``)."""

    op: Literal["vector"]
    label: str = Field(min_length=1)
    in_elements: PosInt
    out_elements: PosInt
    vector_ops: NonNegInt
    #: storage bits per output element incl. scales (a quantising layer); None: act bits
    out_bits: Annotated[float, Field(gt=0.0, allow_inf_nan=False)] | None = None
    #: the labelled function computed by segments or a table (simulator.workload.approx)
    approx: ApproxSpec | None = None

    @model_validator(mode="after")
    def _check(self) -> VectorSpec:
        _approx(self.approx, self.label)
        return self

    def lower(self, batch: int) -> Layer:
        return Layer(self.name, self.op, "vector", ifmap_elements=batch * self.in_elements,
                     ofmap_elements=batch * self.out_elements,
                     vector_ops=batch * self.vector_ops, output_bits=self.out_bits,
                     dims=self.model_dump(exclude={"name", "op", "inputs", "approx"}),
                     approx=_approx(self.approx, self.label))


class EmbeddingSpec(SpecBase):
    """A table lookup (gather): ``tokens`` rows of ``dim`` values read from the table in DRAM
    (only the rows used, not the table), copied to the output (one vector op per value)."""

    op: Literal["embedding"]
    num_embeddings: PosInt
    dim: PosInt
    tokens: PosInt = 1

    def lower(self, batch: int) -> Layer:
        n = batch * self.tokens * self.dim
        return Layer(self.name, self.op, "vector", ifmap_elements=n, ofmap_elements=n,
                     vector_ops=n, dims=self.model_dump(exclude={"name", "op", "inputs"}))


def pool_out(size: int, kernel: int, stride: int, pad: int, ceil_mode: bool) -> int:
    """Pooling outputs along one axis, PyTorch's rule for ``ceil_mode`` (PoolSpec)."""
    span = size + 2 * pad - kernel
    if not ceil_mode:
        return span // stride + 1
    out = -(-span // stride) + 1
    return out - 1 if (out - 1) * stride >= size + pad else out


LayerSpec = Annotated[Conv2dSpec | LinearSpec | MatmulSpec | PoolSpec | GlobalPoolSpec
                      | ElementwiseSpec | VectorSpec | EmbeddingSpec, Field(discriminator="op")]


class NetworkSpec(BaseModel):
    """A network spec file (``workloads/networks/*.yaml``)."""

    model_config = ConfigDict(defer_build=True, extra="forbid", frozen=True)
    name: str = Field(min_length=1)
    source: str = ""
    batch_size: PosInt = 1
    seed: int = Field(default=0, ge=0, strict=True)
    layers: Annotated[list[LayerSpec], Field(min_length=1)]
    #: early-exit branches and their measured exit rates (simulator.workload.dynamic)
    early_exit: ExitSpec | None = None


_LAYER_ADAPTER: TypeAdapter[Any] = TypeAdapter(LayerSpec)


def parse_network(data: Any, source: str = "<dict>") -> Workload:
    """Validate a parsed network spec; every error at once, each with its layer path."""
    spec = validate_file(NetworkSpec, data, source, WorkloadError, "`name` and `layers`",
                         lambda errs: label_layer_paths(errs, data))
    names = [layer.name for layer in spec.layers]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise WorkloadError(source, [("layers", f"duplicate layer names: {dupes}")])
    errors = []
    for i, layer in enumerate(spec.layers):
        if layer.name == NETWORK_INPUT:
            errors.append((f"layers[{i}].name", f"{NETWORK_INPUT!r} names the network input"))
        for name in layer.inputs or ():
            if name != NETWORK_INPUT and name not in names[:i]:
                errors.append((f"layers[{i}] ({layer.name}).inputs",
                               f"{name!r} is not a layer listed before {layer.name!r} "
                               f"(or {NETWORK_INPUT!r}, the network input)"))
    if errors:
        raise WorkloadError(source, errors)
    layers = tuple(replace(layer.lower(spec.batch_size),
                           inputs=None if layer.inputs is None else tuple(layer.inputs))
                   for layer in spec.layers)
    exits = None
    if spec.early_exit is not None:
        exits, errs = spec.early_exit.build(names)
        if errs:
            raise WorkloadError(source, [(f"early_exit.{p}", m) for p, m in errs])
    return Workload(spec.name, layers, source=spec.source, path=source, seed=spec.seed,
                    exits=exits)


def label_layer_paths(errors: list[tuple[str, str]],
                      data: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Make layer locations readable: ``layers[3].kernel`` -> ``layers[3] (conv1).kernel``,
    dropping the union tag pydantic inserts after the index (``layers[3].conv2d.kernel``)."""
    out = []
    raw_layers = data.get("layers") if isinstance(data.get("layers"), list) else []
    for path, msg in errors:
        parts = path.split(".")
        if parts[0].startswith("layers[") and raw_layers:
            idx = int(parts[0][7:-1])
            layer = raw_layers[idx] if idx < len(raw_layers) else None
            label = f"{parts[0]}"
            if isinstance(layer, Mapping) and "name" in layer:
                label += f" ({layer['name']})"
            if len(parts) > 1 and isinstance(layer, Mapping) and parts[1] == layer.get("op"):
                parts = parts[1:]  # drop the union tag pydantic inserts
            parts[0] = label
            if "does not match any of the expected tags" in msg or "Unable to extract tag" in msg:
                msg = f"unknown or missing op; expected one of {sorted(_OPS)} ({msg})"
        out.append((".".join(parts), msg))
    return out


_OPS = {"conv2d", "linear", "matmul", "maxpool", "avgpool", "global_avgpool", "vector",
        "embedding", *ELEMENTWISE_OPS}
