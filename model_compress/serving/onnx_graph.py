"""A BERT or MPNet sequence classifier as an ONNX graph, written with ``onnx.helper`` from HF-keyed numpy weights.

The graph is the forward pass of ``modeling.bert.BertForSequenceClassification`` (or
``modeling.mpnet.MPNetForSequenceClassification``: positions from the mask, the relative-position bias
looked up once from precomputed buckets, its head) in eval mode, op for op, in standard ONNX operators
only (opset 17: ``LayerNormalization`` is native there), so any ONNX runtime can run it:

    inputs   input_ids, attention_mask, token_type_ids   int64 [batch, sequence]
    output   logits                                      float32 [batch, num_labels]

Batch and sequence axes are dynamic. Linear weights are stored [in, out] (a plain ``MatMul``), and each
layer's query, key and value projections are one [hidden, 3 * hidden] ``MatMul`` split afterwards.
GELU is written in its exact erf form, which onnxruntime fuses into one kernel. Building needs the
``onnx`` package only; no OneFlow and no exporter tracing.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Mapping

import numpy as np

from model_compress.modeling.config import EncoderConfig, MPNetConfig
from model_compress.serving import SERVING_INPUTS

OPSET = 17
OUTPUT_NAME = "logits"
PRODUCER = "model_compress"
CONFIG_KEY = "model_compress.config"  # metadata: the model's config as JSON
# ONNX files are protobufs, which cannot exceed 2 GiB; larger weights go to a side file.
EMBED_LIMIT_BYTES = 1_800_000_000


class _Builder:
    """Collects nodes and initializers; every ``op`` call returns the name of its (first) output."""

    def __init__(self) -> None:
        from onnx import helper

        self.helper = helper
        self.nodes: list = []
        self.initializers: list = []
        self._count = 0

    def _name(self, hint: str) -> str:
        self._count += 1
        return f"{hint}_{self._count}"

    def const(self, name: str, value: np.ndarray) -> str:
        from onnx import numpy_helper

        self.initializers.append(numpy_helper.from_array(np.asarray(value, order="C"), name))  # 0-d stays 0-d
        return name

    def op(self, op_type: str, inputs: list[str], hint: str | None = None, outputs: int = 1, **attrs):
        names = [self._name(hint or op_type.lower()) for _ in range(outputs)]
        self.nodes.append(self.helper.make_node(op_type, inputs, names, name=names[0], **attrs))
        return names[0] if outputs == 1 else names

    def linear(self, x: str, weight: np.ndarray, bias: np.ndarray, prefix: str) -> str:
        """x @ weight.T + bias, with weight given [out, in] as in the checkpoints."""
        w = self.const(f"{prefix}.weight_t", np.asarray(weight, np.float32).T)
        b = self.const(f"{prefix}.bias", np.asarray(bias, np.float32))
        return self.op("Add", [self.op("MatMul", [x, w], hint=f"{prefix}.matmul"), b], hint=prefix)

    def layer_norm(self, x: str, state: Mapping[str, np.ndarray], prefix: str, eps: float) -> str:
        gamma = self.const(f"{prefix}.weight", np.asarray(state[f"{prefix}.weight"], np.float32))
        beta = self.const(f"{prefix}.bias", np.asarray(state[f"{prefix}.bias"], np.float32))
        return self.op("LayerNormalization", [x, gamma, beta], hint=prefix, axis=-1, epsilon=eps)


def _f32(value: float) -> np.ndarray:
    return np.array(value, dtype=np.float32)


def _i64(values) -> np.ndarray:
    return np.array(values, dtype=np.int64)


@dataclasses.dataclass(frozen=True)
class _LayerKeys:
    """Where one encoder layer's attention tensors live (BERT's names; MPNet's in ``_MPNET_LAYER``)."""

    prefix: str = "bert.encoder.layer."
    qkv: tuple[str, str, str] = ("attention.self.query", "attention.self.key", "attention.self.value")
    out: str = "attention.output.dense"
    norm: str = "attention.output.LayerNorm"


_BERT_LAYER = _LayerKeys()
_MPNET_LAYER = _LayerKeys("mpnet.encoder.layer.", ("attention.attn.q", "attention.attn.k", "attention.attn.v"),
                          "attention.attn.o", "attention.LayerNorm")


def _encoder_layer(g: _Builder, x: str, additive: str, state: Mapping[str, np.ndarray], i: int,
                   config: EncoderConfig, keys: _LayerKeys = _BERT_LAYER) -> str:
    """One post-LN transformer layer; ``additive`` is added to the scaled scores (mask, position bias)."""
    p = f"{keys.prefix}{i}."
    qkv_weight = np.concatenate([state[f"{p}{n}.weight"] for n in keys.qkv])
    qkv_bias = np.concatenate([state[f"{p}{n}.bias"] for n in keys.qkv])
    qkv = g.linear(x, qkv_weight, qkv_bias, f"{p}{keys.qkv[0].rpartition('.')[0]}.qkv")
    q, k, v = g.op("Split", [qkv, "split_qkv"], hint=f"{p}split", outputs=3, axis=-1)
    # [B, L, H] -> [B, L, heads, d] -> [B, heads, L, d] (keys -> [B, heads, d, L], ready for q @ k^T)
    q, k, v = (g.op("Reshape", [t, "heads_shape"], hint=f"{p}reshape") for t in (q, k, v))
    q = g.op("Transpose", [q], hint=f"{p}q", perm=[0, 2, 1, 3])
    k = g.op("Transpose", [k], hint=f"{p}k_t", perm=[0, 2, 3, 1])
    v = g.op("Transpose", [v], hint=f"{p}v", perm=[0, 2, 1, 3])
    scores = g.op("Div", [g.op("MatMul", [q, k], hint=f"{p}qk"), "sqrt_head_size"], hint=f"{p}scaled")
    probs = g.op("Softmax", [g.op("Add", [scores, additive], hint=f"{p}masked")], hint=f"{p}probs", axis=-1)
    context = g.op("Transpose", [g.op("MatMul", [probs, v], hint=f"{p}context")], perm=[0, 2, 1, 3])
    context = g.op("Reshape", [context, "merge_shape"], hint=f"{p}merged")
    attended = g.linear(context, state[f"{p}{keys.out}.weight"], state[f"{p}{keys.out}.bias"], f"{p}{keys.out}")
    x = g.layer_norm(g.op("Add", [attended, x]), state, f"{p}{keys.norm}", config.layer_norm_eps)
    inner = g.linear(x, state[f"{p}intermediate.dense.weight"], state[f"{p}intermediate.dense.bias"],
                     f"{p}intermediate.dense")
    # exact GELU: x * 0.5 * (1 + erf(x / sqrt(2)))
    erf = g.op("Erf", [g.op("Div", [inner, "sqrt_two"])])
    inner = g.op("Mul", [g.op("Mul", [inner, g.op("Add", [erf, "one"])]), "half"], hint=f"{p}gelu")
    out = g.linear(inner, state[f"{p}output.dense.weight"], state[f"{p}output.dense.bias"], f"{p}output.dense")
    return g.layer_norm(g.op("Add", [out, x]), state, f"{p}output.LayerNorm", config.layer_norm_eps)


def _shared_constants(g: _Builder, config: EncoderConfig) -> None:
    g.const("sqrt_head_size", _f32(math.sqrt(config.head_size)))
    g.const("sqrt_two", _f32(math.sqrt(2.0)))
    g.const("one", _f32(1.0))
    g.const("half", _f32(0.5))
    g.const("mask_fill", _f32(-10000.0))
    g.const("split_qkv", _i64([config.hidden_size] * 3))
    g.const("heads_shape", _i64([0, 0, config.num_attention_heads, config.head_size]))
    g.const("merge_shape", _i64([0, 0, config.hidden_size]))
    g.const("mask_axes", _i64([1, 2]))
    # 0-d index scalars: Gather with a scalar index drops the axis, Range takes scalars
    for name, value in (("seq_axis", 1), ("range_start", 0), ("range_step", 1), ("cls_index", 0)):
        g.const(name, _i64(value))


def _additive_mask(g: _Builder) -> str:
    """[B, 1, 1, L]: 0 on tokens, -10000 on padding."""
    from onnx import TensorProto

    mask = g.op("Cast", ["attention_mask"], hint="mask_float", to=TensorProto.FLOAT)
    inverted = g.op("Sub", ["one", mask], hint="mask_inverted")
    return g.op("Unsqueeze", [g.op("Mul", [inverted, "mask_fill"]), "mask_axes"], hint="additive_mask")


def _finish(g: _Builder, logits: str, config: EncoderConfig, name: str, metadata: Mapping[str, str] | None):
    from onnx import TensorProto, helper

    g.nodes.append(helper.make_node("Identity", [logits], [OUTPUT_NAME], name="logits_out"))
    inputs = [helper.make_tensor_value_info(n, TensorProto.INT64, ["batch", "sequence"]) for n in SERVING_INPUTS]
    output = helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["batch", config.num_labels])
    graph = helper.make_graph(g.nodes, name, inputs, [output], g.initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name=PRODUCER)
    model.ir_version = 8  # the onnx 1.10 IR: older runtimes accept it too
    props = {CONFIG_KEY: json.dumps(config.to_dict(), sort_keys=True), **(metadata or {})}
    helper.set_model_props(model, {str(k): str(v) for k, v in props.items()})
    return model


def _mpnet_onnx(state: Mapping[str, np.ndarray], config: MPNetConfig, metadata: Mapping[str, str] | None):
    """MPNetForSequenceClassification: padding-offset positions, the shared relative-position bias, its head.

    ``token_type_ids`` stays a graph input (every exported classifier takes the same three) and is unused.
    """
    from onnx import TensorProto

    from model_compress.modeling.mpnet import relative_position_buckets

    g = _Builder()
    _shared_constants(g, config)
    g.const("pad_index", _i64(config.pad_token_id))
    g.const("zero_pair", _i64([0, 0]))
    g.const("axis0", _i64([0]))
    g.const("position_buckets", relative_position_buckets(config.max_seq_length, config.relative_attention_num_buckets))
    e = "mpnet.embeddings."
    word = g.op("Gather", [g.const(f"{e}word_embeddings.weight", state[f"{e}word_embeddings.weight"]),
                           "input_ids"], hint="word")
    # positions: pad_index + running count of real tokens on tokens, pad_index on padding
    mask = g.op("Cast", ["attention_mask"], hint="mask_int", to=TensorProto.INT64)
    counted = g.op("Mul", [g.op("CumSum", [mask, "seq_axis"], hint="running_count"), mask], hint="counted")
    positions = g.op("Add", [counted, "pad_index"], hint="positions")
    position = g.op("Gather", [g.const(f"{e}position_embeddings.weight", state[f"{e}position_embeddings.weight"]),
                               positions], hint="position")
    x = g.layer_norm(g.op("Add", [word, position], hint="embedding_sum"), state, f"{e}LayerNorm", config.layer_norm_eps)

    # relative-position bias [1, heads, L, L] from the buckets of the first L positions, plus the padding mask
    seq_len = g.op("Unsqueeze", [g.op("Gather", [g.op("Shape", ["input_ids"]), "seq_axis"]), "axis0"],
                   hint="seq_len_1d")
    ends = g.op("Concat", [seq_len, seq_len], hint="bucket_ends", axis=0)
    buckets = g.op("Slice", ["position_buckets", "zero_pair", ends], hint="buckets")
    table = g.const("mpnet.encoder.relative_attention_bias.weight",
                    state["mpnet.encoder.relative_attention_bias.weight"])
    bias = g.op("Transpose", [g.op("Gather", [table, buckets], hint="bias_lookup")], hint="bias", perm=[2, 0, 1])
    bias = g.op("Unsqueeze", [bias, "axis0"], hint="position_bias")
    additive = g.op("Add", [_additive_mask(g), bias], hint="mask_and_bias")
    for i in range(config.num_hidden_layers):
        x = _encoder_layer(g, x, additive, state, i, config, _MPNET_LAYER)

    first = g.op("Gather", [x, "cls_index"], hint="first_token", axis=1)
    hidden = g.op("Tanh", [g.linear(first, state["classifier.dense.weight"], state["classifier.dense.bias"],
                                    "classifier.dense")], hint="head_hidden")
    logits = g.linear(hidden, state["classifier.out_proj.weight"], state["classifier.out_proj.bias"],
                      "classifier.out_proj")
    return _finish(g, logits, config, "mpnet_sequence_classifier", metadata)


def build_classifier_onnx(
    state: Mapping[str, np.ndarray], config: EncoderConfig, metadata: Mapping[str, str] | None = None
):
    """An ``onnx.ModelProto`` computing the classifier's logits from HF-keyed weights.

    ``state`` must hold every classifier tensor (``bert.*`` or ``mpnet.*``, ``classifier.*``); ``metadata``
    goes into the model's ``metadata_props`` (e.g. label names), next to the config as JSON. An
    ``MPNetConfig`` gives MPNetForSequenceClassification's graph, any other BertForSequenceClassification's.
    """
    if isinstance(config, MPNetConfig):
        return _mpnet_onnx(state, config, metadata)
    g = _Builder()
    _shared_constants(g, config)

    # embeddings: word + position (0 .. L-1) + token type, then LayerNorm
    e = "bert.embeddings."
    word = g.op("Gather", [g.const(f"{e}word_embeddings.weight", state[f"{e}word_embeddings.weight"]),
                           "input_ids"], hint="word")
    seq_len = g.op("Gather", [g.op("Shape", ["input_ids"]), "seq_axis"], hint="seq_len")  # a scalar
    positions = g.op("Range", ["range_start", seq_len, "range_step"], hint="positions")
    position = g.op("Gather", [g.const(f"{e}position_embeddings.weight", state[f"{e}position_embeddings.weight"]),
                               positions], hint="position")
    token_type = g.op("Gather", [g.const(f"{e}token_type_embeddings.weight",
                                         state[f"{e}token_type_embeddings.weight"]), "token_type_ids"],
                      hint="token_type")
    summed = g.op("Add", [g.op("Add", [word, position]), token_type], hint="embedding_sum")
    x = g.layer_norm(summed, state, f"{e}LayerNorm", config.layer_norm_eps)
    additive = _additive_mask(g)
    for i in range(config.num_hidden_layers):
        x = _encoder_layer(g, x, additive, state, i, config)

    cls = g.op("Gather", [x, "cls_index"], hint="cls", axis=1)
    pooled = g.op("Tanh", [g.linear(cls, state["bert.pooler.dense.weight"], state["bert.pooler.dense.bias"],
                                    "bert.pooler.dense")], hint="pooled")
    logits = g.linear(pooled, state["classifier.weight"], state["classifier.bias"], "classifier")
    return _finish(g, logits, config, "bert_sequence_classifier", metadata)


def save_onnx(model, path: str) -> list[str]:
    """Write ``model`` to ``path``; weights over the protobuf limit go to ``<name>.data`` beside it.

    Returns the files written.
    """
    import onnx

    size = sum(len(t.raw_data) for t in model.graph.initializer)
    if size <= EMBED_LIMIT_BYTES:
        onnx.save_model(model, path)
        return [path]
    data = os.path.basename(path) + ".data"
    onnx.save_model(model, path, save_as_external_data=True, all_tensors_to_one_file=True, location=data)
    return [path, os.path.join(os.path.dirname(path), data)]
