"""``python -m model_compress.data.synthetic --out data``."""

from model_compress.data.synthetic import main

main()
