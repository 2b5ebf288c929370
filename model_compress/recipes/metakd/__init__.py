"""Meta-KD: a meta-teacher learnt across domains, distilled into a small student for one domain.

Entries (run from model_compress/metakd/, flags as in the seed README):

    python preprocess.py --task_name senti --data_dir data/SENTI/ --resave_ofrecord
    python meta_teacher.py --task_name senti --data_dir data/SENTI/ --num_epochs 2 --do_train --do_eval
    python meta_teacher_eval.py --task_name senti --model_load_dir <the meta-teacher snapshot>
    python meta_distill.py --task_name senti --teacher_model <the same> --genre books --distill_stage first
    python meta_distill.py --task_name senti --teacher_model <the same> --genre books --distill_stage second

(the meta-teacher snapshot: output/model_save-<time>/snapshot_best_mft_model_senti_dev_<acc>)

1. preprocess: MFT's prototypical scores (`model_compress.recipes.mft.run_preprocess`) on the SENTI domains.
2. meta-teacher: sample-weighted CE + domain-corruption loss (weight 0.5) over all domains, best dev snapshot.
3. teacher dump: logits, mapped attention probabilities (or scores) and hidden states, and the domain representation of
   every training example, written once as memory-mapped .npy files (see docs/metakd.md).
4. student: stage 1 intermediate distillation weighted by the domain-expertise weight, stage 2 soft
   labels at temperature T; `--distill_stage vanilla` trains the same student with plain KD instead.

`python -m model_compress.recipes.metakd summary ...` prints the per-domain comparison table.

Modules: `shared` (domains, stages, layer mapping, the attention flag), `teacher` (steps 1-3), `distill`
(step 4), `summary`; each holds its flags, typed settings and run. The entry points are re-exported here.
"""

from model_compress.recipes.metakd.distill import (
    distill_main,
    distill_parser,
    first_stage_snapshot,
    results_name,
    run_meta_distill,
)
from model_compress.recipes.metakd.shared import ALL_GENRES, STAGES, domain_names, genre_id
from model_compress.recipes.metakd.summary import summary_main, summary_table
from model_compress.recipes.metakd.teacher import (
    ensure_teacher_dump,
    meta_teacher_main,
    meta_teacher_parser,
    preprocess_main,
    preprocess_parser,
    run_meta_teacher,
    run_teacher_eval,
    teacher_eval_main,
    teacher_eval_parser,
)
from model_compress.training.domains import domain_metrics, per_domain

__all__ = [
    "ALL_GENRES",
    "STAGES",
    "distill_main",
    "distill_parser",
    "domain_metrics",
    "domain_names",
    "ensure_teacher_dump",
    "first_stage_snapshot",
    "genre_id",
    "meta_teacher_main",
    "meta_teacher_parser",
    "per_domain",
    "preprocess_main",
    "preprocess_parser",
    "results_name",
    "run_meta_distill",
    "run_meta_teacher",
    "run_teacher_eval",
    "summary_main",
    "summary_table",
    "teacher_eval_main",
    "teacher_eval_parser",
]
