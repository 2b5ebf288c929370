"""The commands beside the algorithms: GLUE data download and processing, export, table prediction and
the comparison report (each a thin entry over data/ and serving/)."""
