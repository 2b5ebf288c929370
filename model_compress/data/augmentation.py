"""TinyBERT data augmentation: new training rows made by replacing words with near neighbours from the
teacher's own vocabulary, written once to ``train_aug.tsv`` and reused while its inputs are unchanged.

For every content word of a text (alphabetic, not a stop word) the candidates are the ``M`` whole words
of the vocabulary nearest to it by cosine similarity in a word-embedding matrix (the teacher's); a word
the vocabulary splits into pieces is looked up by the mean of its pieces' vectors. Each of ``N`` tries
replaces every content word, with probability ``p``, by one of its candidates drawn uniformly; tries
that repeat an earlier text are dropped. A row keeps its original text first; pair tasks augment each
text in turn while the other stays as it was. The labels are copied, but TinyBERT trains on the
teacher's outputs for these rows, not on the labels.

The original replaced single-piece words by a masked-LM's top predictions and other words by GloVe
neighbours; no GloVe file and no masked-LM head ship here (the default model carries no MLM weights),
so every word uses the embedding neighbours (docs/algorithms.md).

Cache: ``train_aug.tsv`` (header ``sentence label`` or ``text_a text_b label``) beside ``train_aug.json``,
whose key covers the source examples, the embedding matrix, the vocab and N, M, p and the seed, and
which records the tsv's sha256; both are written to temporary names and renamed, the json last, so a
crash, a concurrent build or a damaged file never passes for a valid cache.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import random
from collections.abc import Sequence

import numpy as np

from model_compress.data.ofrecord import examples_fingerprint
from model_compress.data.processors import DataFormatError, InputExample
from model_compress.data.processors.base import read_rows
from model_compress.data.tokenization import FullTokenizer
from model_compress.files import sha256_file, write_text_atomic

FORMAT_VERSION = 1
AUG_FILE = "train_aug.tsv"
AUG_META = "train_aug.json"
# The original's expansion factor N per task; other tasks use DEFAULT_N.
TASK_N = {"cola": 30, "mnli": 10, "mrpc": 30, "sst-2": 20, "sts-b": 30, "qqp": 10, "qnli": 20, "rte": 30}
DEFAULT_N = 20

# Function words that are never replaced (nor offered as replacements).
STOP_WORDS = frozenset("""
a about above after again against all am an and any are as at be because been before being below between
both but by can could did do does doing down during each few for from further had has have having he her
here hers herself him himself his how i if in into is it its itself just me more most my myself no nor not
now of off on once only or other our ours ourselves out over own same she should so some such than that the
their theirs them themselves then there these they this those through to too under until up very was we
were what when where which while who whom why will with would you your yours yourself yourselves s t d ll m
o re ve y don isn aren wasn weren hasn haven hadn doesn didn won wouldn shouldn couldn mustn needn shan ain
""".split())


@dataclasses.dataclass(frozen=True)
class AugmentSpec:
    """How many rows (N tries per text), how many candidates per word (M), replacement probability p, seed."""

    num_tries: int = DEFAULT_N
    num_candidates: int = 15
    replace_prob: float = 0.4
    seed: int = 42

    def __post_init__(self) -> None:
        if self.num_tries < 1:
            raise ValueError(f"--N must be at least 1, got {self.num_tries}")
        if self.num_candidates < 1:
            raise ValueError(f"--M must be at least 1, got {self.num_candidates}")
        if not 0.0 <= self.replace_prob <= 1.0:
            raise ValueError(f"--p must be in [0, 1], got {self.replace_prob}")


def is_content_word(word: str) -> bool:
    """Lower-case ASCII letters only and not a stop word: a word augmentation may replace."""
    return word.isascii() and word.isalpha() and word.islower() and word not in STOP_WORDS


class WordNeighbours:
    """The M whole vocabulary words nearest to a word by cosine similarity of embedding vectors."""

    def __init__(self, embeddings: np.ndarray, tokenizer: FullTokenizer, num_candidates: int) -> None:
        embeddings = np.asarray(embeddings, dtype=np.float32)
        if embeddings.ndim != 2 or embeddings.shape[0] < len(tokenizer.vocab):
            raise ValueError(f"the word-embedding matrix {embeddings.shape} does not cover the "
                             f"{len(tokenizer.vocab)}-token vocab")
        self.tokenizer = tokenizer
        self.embeddings = embeddings
        self.num_candidates = int(num_candidates)
        ids = sorted(i for token, i in tokenizer.vocab.items() if is_content_word(token))
        self.ids = np.asarray(ids, dtype=np.int64)
        self.words = [tokenizer.inv_vocab[i] for i in ids]
        self._unit = _unit_rows(embeddings[self.ids])
        self._cache: dict[str, list[str]] = {}

    def query(self, word: str) -> np.ndarray | None:
        """The word's vector: its own row, or the mean of its pieces' rows; None when it has no known pieces."""
        pieces = self.tokenizer.wordpiece_tokenizer.tokenize_word(word)
        if pieces == [self.tokenizer.wordpiece_tokenizer.unk_token]:
            return None
        return self.embeddings[[self.tokenizer.vocab[p] for p in pieces]].mean(0)

    def candidates(self, word: str) -> list[str]:
        """Up to M replacement words, nearest first (ties broken by vocabulary order); the word itself excluded."""
        found = self._cache.get(word)
        if found is None:
            vector = self.query(word)
            found = []
            if vector is not None and len(self.ids):
                scores = self._unit @ _unit_rows(vector[None])[0]
                order = np.argsort(-scores, kind="stable")
                found = [self.words[i] for i in order[: self.num_candidates + 1] if self.words[i] != word]
                found = found[: self.num_candidates]
            self._cache[word] = found
        return found


def _unit_rows(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.maximum(norms, 1e-12)


def augment_text(text: str, tokenizer: FullTokenizer, neighbours: WordNeighbours, spec: AugmentSpec,
                 rng: random.Random) -> list[str]:
    """Up to N new texts (basic-tokenised words joined by spaces), each different from the others and from
    the tokenised original."""
    words = tokenizer.basic_tokenizer.tokenize(text)
    options = {i: neighbours.candidates(w) for i, w in enumerate(words) if is_content_word(w)}
    options = {i: c for i, c in options.items() if c}
    seen, out = {" ".join(words)}, []
    if not options:
        return out
    for _ in range(spec.num_tries):
        new = list(words)
        for i, choices in options.items():
            pick = choices[rng.randrange(len(choices))]
            if rng.random() < spec.replace_prob:
                new[i] = pick
        joined = " ".join(new)
        if joined not in seen:
            seen.add(joined)
            out.append(joined)
    return out


def augment_examples(examples: Sequence[InputExample], tokenizer: FullTokenizer, neighbours: WordNeighbours,
                     spec: AugmentSpec) -> list[InputExample]:
    """Each example followed by its variants (text_a's, then text_b's for pairs); deterministic in spec.seed."""
    rng = random.Random(spec.seed)
    out: list[InputExample] = []
    for ex in examples:
        out.append(ex)
        for j, text in enumerate(augment_text(ex.text_a, tokenizer, neighbours, spec, rng)):
            out.append(dataclasses.replace(ex, guid=f"{ex.guid}-a{j}", text_a=text))
        if ex.text_b is not None:
            for j, text in enumerate(augment_text(ex.text_b, tokenizer, neighbours, spec, rng)):
                out.append(dataclasses.replace(ex, guid=f"{ex.guid}-b{j}", text_b=text))
    return out


def cache_key(examples: Sequence[InputExample], embeddings: np.ndarray, tokenizer: FullTokenizer,
              spec: AugmentSpec) -> str:
    """sha256 over everything the augmented rows depend on."""
    digest = hashlib.sha256()
    digest.update(np.ascontiguousarray(embeddings, dtype=np.float32).tobytes())
    parts = {"version": FORMAT_VERSION, "source": examples_fingerprint(examples), "vocab": tokenizer.vocab_hash,
             "embeddings": digest.hexdigest(), "spec": dataclasses.asdict(spec)}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def write_augmented(path: str, examples: Sequence[InputExample]) -> str:
    """The rows as a TSV with a header, written to a temporary name and renamed; returns the file's sha256."""
    pairs = any(ex.text_b is not None for ex in examples)
    lines = ["text_a\ttext_b\tlabel" if pairs else "sentence\tlabel"]
    for ex in examples:
        cols = [ex.text_a, ex.text_b or ""] if pairs else [ex.text_a]
        lines.append("\t".join([*cols, ex.label if ex.label is not None else ""]))
    text = "\n".join(lines) + "\n"
    write_text_atomic(path, text)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def read_augmented(path: str) -> list[InputExample]:
    """Rows written by ``write_augmented`` (errors name file and line)."""
    rows = read_rows(path)
    first = next(rows, None)
    if first is None or first[1] not in (["sentence", "label"], ["text_a", "text_b", "label"]):
        raise DataFormatError(path, 1, "header", "not an augmented training file (expected 'sentence<TAB>label' "
                              "or 'text_a<TAB>text_b<TAB>label')")
    width = len(first[1])
    out = []
    for number, cols in rows:
        if len(cols) != width:
            raise DataFormatError(path, number, "columns", f"expected {width} columns, found {len(cols)}")
        text_b = cols[1] if width == 3 else None
        out.append(InputExample(f"train_aug-{number}", cols[0], text_b, cols[-1] or None))
    return out


def ensure_augmented(directory: str, examples: Sequence[InputExample], tokenizer: FullTokenizer,
                     embeddings: np.ndarray, spec: AugmentSpec) -> tuple[list[InputExample], str, bool]:
    """The augmented training rows of ``examples``: read from ``directory``/train_aug.tsv when its key
    matches, else built and written there. Returns (rows, path, whether the file was reused)."""
    path, meta_path = os.path.join(directory, AUG_FILE), os.path.join(directory, AUG_META)
    key = cache_key(examples, embeddings, tokenizer, spec)
    meta = _read_meta(meta_path)
    if meta.get("key") == key and os.path.isfile(path) and sha256_file(path) == meta.get("sha256"):
        return read_augmented(path), path, True
    rows = augment_examples(examples, tokenizer, WordNeighbours(embeddings, tokenizer, spec.num_candidates), spec)
    os.makedirs(directory, exist_ok=True)
    digest = write_augmented(path, rows)
    write_text_atomic(meta_path, json.dumps({"key": key, "sha256": digest, "count": len(rows),
                                         "source_count": len(examples), "version": FORMAT_VERSION,
                                         **dataclasses.asdict(spec)}, indent=2))
    return rows, path, False



def _read_meta(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            meta = json.load(f)
    except (OSError, ValueError):
        return {}
    return meta if isinstance(meta, dict) else {}


