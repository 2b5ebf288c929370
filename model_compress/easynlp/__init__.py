"""EasyNLP's command lines on OneFlow: the `easynlp` command and the Meta-KD example scripts.

Modules: `flags` (EasyNLP's flags, user_defined_parameters, one-line errors), `schema` (tables read by
--input_schema, --output_schema rows), `models` (model names -> local directories), `app` (the `easynlp`
modes), `metakd` (the examples/knowledge_distillation/metakd scripts). Training itself is the jobs'.
"""


def main() -> None:
    """Console entry point of `easynlp`: check OneFlow first, then run the command."""
    from model_compress.runtime import exit_without_oneflow

    exit_without_oneflow()
    from model_compress.easynlp.app import main as app_main

    app_main()
