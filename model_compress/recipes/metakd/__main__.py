"""``python -m model_compress.recipes.metakd summary ...``: the per-domain comparison table."""

import sys

from model_compress.recipes.metakd.summary import summary_main

if len(sys.argv) > 1 and sys.argv[1] == "summary":
    summary_main(sys.argv[2:])
else:
    raise SystemExit("usage: python -m model_compress.recipes.metakd summary --teacher_results FILE --column ...")
