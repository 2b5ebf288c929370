"""Serving a classifier outside the training loop: export (Hugging Face folder, ONNX), parity checks,
inference runners (OneFlow nn.Graph, onnxruntime) and interleaved throughput measurement.
"""

# the inputs of every exported model and runner, in call order (int64 [batch, sequence] in ONNX)
SERVING_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


class ServingError(ValueError):
    """A user mistake (missing snapshot, existing output, unsupported head ...); the message says which."""
