"""Whole runs over typed settings (no argparse): the job modules parse flags, build settings and call these."""
