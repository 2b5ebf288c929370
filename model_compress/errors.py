"""The error a recipe raises for a run that cannot go ahead as asked (a flag, file or model the user chose);
the message names what to change. Entry points turn it into one line and exit code 2 (``cli.user_errors``)."""


class RecipeError(Exception):
    """A user mistake found below the entry points."""
