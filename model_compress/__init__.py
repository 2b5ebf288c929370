"""model_compress: knowledge distillation of BERT-style text classifiers on OneFlow."""

from model_compress import runtime as _runtime  # noqa: F401  (must run before oneflow is imported)

__version__ = "0.1.0"
