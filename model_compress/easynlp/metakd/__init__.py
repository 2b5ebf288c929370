"""EasyNLP's Meta-KD example scripts (examples/knowledge_distillation/metakd/*.py) over the toolkit's Meta-KD recipe.

    python generate_senti_data.py                      data/SENTI/{train,dev,test}.tsv (review domain sentiment)
    python extract_embeddings.py --bert_path M --input data/SENTI/train.tsv --output data/SENTI/train.embeddings.tsv
    python generate_meta_weights.py IN OUT books,dvd,electronics,kitchen   prototypical scores -> `weight` column
    python generate_dev_file.py --input data/SENTI/dev.tsv --output data/SENTI/dev_standard.tsv
    python -m oneflow.distributed.launch $DISTRIBUTED_ARGS meta_teacher_train.py --tables=... (EasyNLP flags)
    python -m oneflow.distributed.launch $DISTRIBUTED_ARGS meta_student_distill.py ... distill_stage=first|second
    python main_evaluate.py --mode evaluate ... pretrain_model_name_or_path=<student run> genre=books

Modules: ``senti_data`` (the review tables), ``embeddings`` (embeddings, meta weights, the dev file),
``tables`` (the training scripts' ``--tables`` staged as a senti task folder) and ``training`` (EasyNLP flags
-> the recipe's typed settings -> ``recipes.metakd``). See docs/easynlp.md.
"""

from model_compress.data.processors import SentiProcessor

SENTI_LABELS = SentiProcessor.labels
SENTI_DOMAINS = SentiProcessor.domains
TABLE_HEADER = ("guid", "text_a", "text_b", "label", "domain")
