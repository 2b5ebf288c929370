"""``python -m model_compress.easynlp ...``: the `easynlp` command."""

from model_compress.easynlp import main

main()
