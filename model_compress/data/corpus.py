"""A plain-text corpus (a directory of files, one sentence per line): listing, sharding, streaming
packed token sequences, and writing one from task training sets."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator, Sequence

import numpy as np

from model_compress.data.tokenization import FullTokenizer


def list_corpus_files(input_dir: str) -> list[str]:
    """Regular, non-hidden files directly in ``input_dir``, sorted by name."""
    if not os.path.isdir(input_dir):
        raise FileNotFoundError(f"--input_dir {input_dir} is not a directory")
    files = sorted(
        os.path.join(input_dir, name)
        for name in os.listdir(input_dir)
        if not name.startswith(".") and os.path.isfile(os.path.join(input_dir, name))
    )
    if not files:
        raise FileNotFoundError(f"--input_dir {input_dir} holds no corpus files (one sentence per line)")
    return files


def shard_files(files: Sequence[str], rank: int, world_size: int) -> list[str]:
    """The files one rank reads: every ``world_size``-th, or one (shared) file when ranks outnumber files."""
    if world_size <= len(files):
        return list(files[rank::world_size])
    return [files[rank % len(files)]]


class CorpusStream:
    """Endless batches of packed token sequences from text files, one pass after another.

    Each pass shuffles the file order with ``seed + pass`` (the same on every rank), takes this
    rank's share of the files, and reads them line by line. Non-empty lines are tokenised; with
    ``pack`` consecutive sentences of one file are joined into ``[CLS] s1 s2 ... [SEP]`` while they
    fit in ``max_seq_length`` (a longer sentence is cut into several sequences), without ``pack``
    each sentence is one sequence, truncated. Sequences pass through a shuffle buffer of
    ``shuffle_buffer`` entries; nothing else is kept in memory.

    Batches are dicts of int32 numpy arrays ``input_ids``, ``input_mask``, ``segment_ids`` of shape
    ``[batch_size, max_seq_length]`` (padding id 0 of ``[PAD]``).
    """

    def __init__(
        self,
        files: Sequence[str],
        tokenizer: FullTokenizer,
        max_seq_length: int,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        pack: bool = True,
        shuffle_buffer: int = 2048,
    ) -> None:
        if max_seq_length < 3:
            raise ValueError(f"max_seq_length {max_seq_length} leaves no room for a token between [CLS] and [SEP]")
        self.files = list(files)
        self.tokenizer = tokenizer
        self.max_seq_length = max_seq_length
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.pack = pack
        self.shuffle_buffer = max(1, shuffle_buffer)
        special = tokenizer.special_ids()
        self.cls_id, self.sep_id, self.pad_id = special["[CLS]"], special["[SEP]"], special["[PAD]"]

    def files_of_pass(self, pass_index: int) -> list[str]:
        order = list(self.files)
        np.random.RandomState(self.seed + pass_index).shuffle(order)
        return shard_files(order, self.rank, self.world_size)

    def _file_sequences(self, path: str) -> Iterator[list[int]]:
        """Token-id bodies (without [CLS]/[SEP]) of one file, packed or one per sentence."""
        budget = self.max_seq_length - 2
        current: list[int] = []
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                text = line.strip()
                if not text:
                    continue
                ids = self.tokenizer.encode(text)
                if not ids:
                    continue
                if not self.pack:
                    yield ids[:budget]
                    continue
                if current and len(current) + len(ids) > budget:
                    yield current
                    current = []
                while len(ids) > budget:  # a sentence longer than one sequence: cut it
                    yield ids[:budget]
                    ids = ids[budget:]
                current.extend(ids)
        if current:
            yield current

    def sequences(self, pass_index: int) -> Iterator[list[int]]:
        """One pass: shuffled ``[CLS] ... [SEP]`` id lists of this rank's files."""
        rng = np.random.RandomState(self.seed + 7919 * (pass_index + 1) + self.rank)
        buffer: list[list[int]] = []
        for path in self.files_of_pass(pass_index):
            for body in self._file_sequences(path):
                buffer.append([self.cls_id, *body, self.sep_id])
                if len(buffer) >= self.shuffle_buffer:
                    index = rng.randint(len(buffer))
                    buffer[index], buffer[-1] = buffer[-1], buffer[index]
                    yield buffer.pop()
        rng.shuffle(buffer)
        yield from buffer

    def _endless(self) -> Iterator[list[int]]:
        pass_index = 0
        while True:
            produced = 0
            for seq in self.sequences(pass_index):
                produced += 1
                yield seq
            if not produced:
                raise ValueError(f"the corpus files {self.files_of_pass(pass_index)} hold no text")
            pass_index += 1

    def batches(self, batch_size: int, skip: int = 0) -> Iterator[dict[str, np.ndarray]]:
        """Endless batches; the first ``skip`` batches are consumed without being built (resume)."""
        stream = self._endless()
        for _ in range(skip * batch_size):
            next(stream)
        while True:
            rows = [next(stream) for _ in range(batch_size)]
            ids = np.full((batch_size, self.max_seq_length), self.pad_id, dtype=np.int32)
            mask = np.zeros((batch_size, self.max_seq_length), dtype=np.int32)
            for i, row in enumerate(rows):
                ids[i, : len(row)] = row
                mask[i, : len(row)] = 1
            yield {"input_ids": ids, "input_mask": mask, "segment_ids": np.zeros_like(ids)}


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def split_sentences(text: str) -> list[str]:
    """Sentences of a text: split after ``.``, ``!`` or ``?`` followed by white space."""
    return [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]


def make_corpus(sources: Sequence[tuple[str, str]], out_dir: str, num_files: int = 8, force: bool = False) -> int:
    """Write the texts of task training sets as a corpus: one sentence per line, over ``num_files`` files.

    ``sources`` are ``(task_name, data_dir)`` pairs read with the project's task processors (training
    split only, so dev text never leaks into distillation). Sentences are deduplicated and dealt
    round-robin into ``part-00000.txt`` ...; the directory is written under a temporary name and
    renamed. An existing non-empty ``out_dir`` is kept unless ``force``. Returns the sentence count
    (0 when the existing corpus was kept).
    """
    from model_compress.data.processors import get_processor

    if os.path.isdir(out_dir) and os.listdir(out_dir) and not force:
        return 0
    seen: set[str] = set()
    sentences: list[str] = []
    for task, data_dir in sources:
        for example in get_processor(task).get_examples(data_dir, "train"):
            for text in (example.text_a, example.text_b):
                for sentence in split_sentences(text or ""):
                    if sentence not in seen:
                        seen.add(sentence)
                        sentences.append(sentence)
    if not sentences:
        raise ValueError(f"no sentences found in {', '.join(d for _, d in sources)}")
    num_files = max(1, min(num_files, len(sentences)))
    tmp = f"{out_dir.rstrip('/')}.tmp{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    handles = [open(os.path.join(tmp, f"part-{i:05d}.txt"), "w", encoding="utf-8") for i in range(num_files)]
    try:
        for i, sentence in enumerate(sentences):
            handles[i % num_files].write(sentence.replace("\n", " ") + "\n")
    finally:
        for handle in handles:
            handle.close()
    if os.path.isdir(out_dir):
        shutil.rmtree(out_dir)
    os.replace(tmp, out_dir)
    return len(sentences)

