"""Which teacher layer each student layer learns from.

Layer numbers here index `EncoderOutput.hidden_states`: 0 is the embeddings output, l >= 1 the output
of encoder layer l (1-based), so student layer j of M and teacher layer I(j) of N are plain indices.
"""

from __future__ import annotations


def check_layer_counts(student_layers: int, teacher_layers: int, even: bool = True) -> int:
    """k = N // M teacher layers per student layer; with `even`, N must be a multiple of M.

    An uneven pair would leave the top teacher layers out of every block without a word.
    """
    if student_layers < 1 or teacher_layers < 1:
        raise ValueError("layer counts must be positive")
    if student_layers > teacher_layers:
        raise ValueError(f"a {student_layers}-layer student cannot map onto a {teacher_layers}-layer teacher")
    if even and teacher_layers % student_layers:
        raise ValueError(f"a {student_layers}-layer student does not divide a {teacher_layers}-layer teacher "
                         f"evenly (the top {teacher_layers % student_layers} teacher layers would never be "
                         "distilled): choose a student depth that divides the teacher's")
    return teacher_layers // student_layers


def pkd_mapping(student_layers: int, teacher_layers: int, strategy: str) -> list[tuple[int, int]]:
    """BERT-PKD (student layer, teacher layer) pairs for layers 1..M-1; the last is left to the soft loss.

    skip: teacher layer k*j with k = N // M (PKD-Skip); last: the M-1 teacher layers just before the
    top one (PKD-Last).
    """
    check_layer_counts(student_layers, teacher_layers, even=strategy == "skip")
    if strategy == "skip":
        k = teacher_layers // student_layers
        return [(j, k * j) for j in range(1, student_layers)]
    if strategy == "last":
        offset = teacher_layers - student_layers
        return [(j, offset + j) for j in range(1, student_layers)]
    raise ValueError(f"unknown PKD mapping {strategy!r}: use 'skip' or 'last'")


def uniform_mapping(student_layers: int, teacher_layers: int, include_embeddings: bool = True) -> list[tuple[int, int]]:
    """TinyBERT / original OneFlow PKD mapping: student j <- teacher k*j for j = 0 (embeddings) .. M."""
    k = check_layer_counts(student_layers, teacher_layers)
    first = 0 if include_embeddings else 1
    return [(j, k * j) for j in range(first, student_layers + 1)]


def hidden_mapping(student_layers: int, teacher_layers: int) -> list[tuple[int, int]]:
    """TinyBERT / Meta-KD hidden states: (student j, teacher k*j) for j = 0 (embeddings) .. M."""
    return uniform_mapping(student_layers, teacher_layers, include_embeddings=True)


def attention_mapping(student_layers: int, teacher_layers: int) -> list[tuple[int, int]]:
    """TinyBERT / Meta-KD attention maps: (student layer i, teacher layer k*i + k - 1), both 0-based encoder
    layers (not hidden-state indexes): each student layer follows the top layer of its block of k."""
    k = check_layer_counts(student_layers, teacher_layers)
    return [(i, k * i + k - 1) for i in range(student_layers)]


def student_init_layers(student_layers: int, pretrained_layers: int) -> list[int]:
    """0-based pretrained layers a sliced student starts from: the attention mapping's teacher side."""
    return [t for _, t in attention_mapping(student_layers, pretrained_layers)]


