"""Meta Fine-Tuning (MFT): prototypical scores, meta fine-tuning across domains, then per-domain fine-tuning.

Entries (run from model_compress/mft/, flags as in the seed README):

    python preprocess.py --task_name g1 --data_dir data/k-shot-cross/g1/16-42 --resave_ofrecord
    python meta_finetuning.py --task_name g1 --data_dir data/k-shot-cross/g1/16-42 --num_epochs 5
    python finetuning.py --task_name sst-2 --data_dir data/k-shot-single/SST-2/16-42 \
        --model_load_dir output/model_save-<time>/snapshot_best_mft_model_g1_dev_<acc>

Seed-style paths are honoured: a relative --data_dir missing from the current directory is looked up
under the repository root, and the seed's `uncased_L-12_H-768_A-12_oneflow` falls back to the default
pretrained model when no such directory exists (a note says so). See docs/mft.md.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from model_compress.cli import (
    add_bool,
    add_data_args,
    add_train_args,
    finite_number,
    normalise_aliases,
    note_ignored,
    user_errors,
)
from model_compress.errors import RecipeError
from model_compress.jobs.common import default_output_dir, flags_of
from model_compress.jobs.pipelines.inputs import RunInputs, prepare_inputs, stamp_dir
from model_compress.jobs.pipelines.mft import finetune, meta_finetune, score_examples
from model_compress.jobs.settings import DataSettings, MFTSettings, RunSettings, TrainSettings, from_flags
from model_compress.modeling.pretrained import DEFAULT as DEFAULT_MODEL


def _prepare(args: argparse.Namespace, splits: Sequence[str]) -> RunInputs:
    """The inputs of the three MFT steps from their flags."""
    return prepare_inputs(from_flags(DataSettings, args), args.seed, args.model_load_dir, args.vocab_file, splits)


def run_settings(args: argparse.Namespace, inputs: RunInputs) -> RunSettings:
    """The run flags; results record the --data_dir actually read."""
    return from_flags(RunSettings, args, flags=flags_of(args, data_dir=inputs.data_dir))


def run_preprocess(args: argparse.Namespace) -> dict:
    """Scores of every training example -> weight.npy + OFRecord splits with `domain` and `weights`."""
    return score_examples(_prepare(args, ("train", "dev")), from_flags(TrainSettings, args))


# ----------------------------------------------------------------------------------------------
# preprocess.py


# accepted because the seeds' preprocess.py command lines pass them; scoring trains nothing and draws
# no random numbers
PREPROCESS_IGNORED = (
    "--num_epochs", "--seed", "--learning_rate", "--batch_size_per_device", "--do_train", "--max_steps")


def preprocess_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="MFT step 1: prototypical score of every training example.",
                                     allow_abbrev=False)
    parser.add_argument("--model_load_dir", default=DEFAULT_MODEL,
                        help="pretrained BERT giving the embeddings (default: all-MiniLM-L6-v2)")
    add_data_args(parser)
    add_train_args(parser, epochs=4, lr=5e-5)  # accepted as in the seed command; only --seed and eval flags act
    parser.set_defaults(task_name="g1", data_dir="data/k-shot-cross/g1/16-42")
    return parser


@user_errors
def preprocess_main(argv=None) -> None:
    note_ignored(argv, PREPROCESS_IGNORED, "preprocess.py")
    run_preprocess(normalise_aliases(preprocess_parser().parse_args(argv)))


# ----------------------------------------------------------------------------------------------
# meta_finetuning.py


def run_meta_finetuning(args: argparse.Namespace) -> dict:
    """Weighted CE + lambda * domain corruption over all domains; keeps the best-dev meta learner."""
    if args.domain_loss_weight < 0:
        raise RecipeError(f"--domain_loss_weight must be >= 0, got {args.domain_loss_weight}")
    inputs = _prepare(args, ("train", "dev"))
    return meta_finetune(inputs, run_settings(args, inputs), from_flags(TrainSettings, args),
                         from_flags(MFTSettings, args), stamp_dir(args.model_save_dir))


def meta_finetuning_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="MFT step 2: meta fine-tuning across the domains of a group.",
                                     allow_abbrev=False)
    parser.add_argument("--model_load_dir", default=DEFAULT_MODEL, help="pretrained BERT (default: all-MiniLM-L6-v2)")
    add_data_args(parser)
    add_train_args(parser, epochs=5, lr=5e-5)
    g = parser.add_argument_group("mft")
    g.add_argument("--layer_indexes", default=None,
                   help="0-based encoder layers of the domain-corruption loss (default 3,7,11 for 12 layers, "
                        "scaled to the model's depth, e.g. 1,3,5 for 6)")
    g.add_argument("--domain_loss_weight", "--domain_weight", dest="domain_loss_weight",
                   type=finite_number, default=0.1,
                   help="lambda: weight of the domain-corruption loss")
    parser.set_defaults(task_name="g1", data_dir="data/k-shot-cross/g1/16-42", do_train=True, do_eval=True)
    return parser


@user_errors
def meta_finetuning_main(argv=None) -> None:
    run_meta_finetuning(normalise_aliases(meta_finetuning_parser().parse_args(argv)))


# ----------------------------------------------------------------------------------------------
# finetuning.py


def run_finetuning(args: argparse.Namespace) -> dict:
    """Plain fine-tuning on one domain's K-shot data (best dev), then dev and test metrics."""
    inputs = _prepare(args, ("train", "dev", "test") if args.do_test else ("train", "dev"))
    return finetune(inputs, run_settings(args, inputs), from_flags(TrainSettings, args), args.do_test,
                    default_output_dir(args.model_save_dir, args.task_name, "finetune"))


def finetuning_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="MFT step 3: fine-tune a (meta-learnt) snapshot on one domain.",
                                     allow_abbrev=False)
    parser.add_argument("--model_load_dir", default=DEFAULT_MODEL,
                        help="snapshot to start from, e.g. "
                             "output/model_save-<time>/snapshot_best_mft_model_g1_dev_<acc>")
    add_data_args(parser)
    add_train_args(parser, epochs=10, lr=2e-5)
    add_bool(parser, "--do_test", True, "also report accuracy on the test split (test.csv)")
    parser.set_defaults(task_name="sst-2", data_dir="data/k-shot-single/SST-2/16-42", do_train=True, do_eval=True)
    return parser


@user_errors
def finetuning_main(argv=None) -> None:
    run_finetuning(normalise_aliases(finetuning_parser().parse_args(argv)))
