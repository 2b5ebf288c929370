"""Texts from the templates: clause and review builders, review / SST-2 styles, ``generate_domain``, and the
line writer the data sets share."""

from __future__ import annotations

import dataclasses
import os
import random
import re
from collections.abc import Sequence

from model_compress.data.synthetic.lexicon import (
    CONTRAST_FORMS,
    DEGREES,
    FILM_NEG_VERDICTS,
    FILM_POS_VERDICTS,
    INTENSIFIERS,
    LABEL_NOISE,
    LEXICONS,
    MIXED_RATE,
    NEG,
    NEG_VERBS,
    NEGATABLE_NEG_VERBS,
    NEGATABLE_POS_VERBS,
    NEGATED_FORMS,
    POS,
    POS_VERBS,
    PRODUCT_NEG_VERDICTS,
    PRODUCT_POS_VERDICTS,
    SHARED_ASPECTS,
    SHARED_NEG,
    SHARED_POS,
    Lexicon,
)


class _Grammar:
    """Clause and review builders for one lexicon, drawing from one ``random.Random``."""

    def __init__(self, lex: Lexicon, rng: random.Random, film: bool = False) -> None:
        self.lex = lex
        self.rng = rng
        self.film = film
        self.current_product = lex.products[0]
        self._shared_aspect = False

    def pick(self, items: Sequence[str]) -> str:
        return items[self.rng.randrange(len(items))]

    def aspect(self) -> tuple[str, bool]:
        """(aspect, plural); a quarter come from the shared list."""
        self._shared_aspect = self.rng.random() < 0.25 and not self.film
        name = self.pick(SHARED_ASPECTS if self._shared_aspect else self.lex.aspects)
        return name.rstrip("*"), name.endswith("*")

    def adjective(self, polarity: int) -> str:
        """An adjective for the aspect drawn last: shared aspects only take shared adjectives."""
        shared = SHARED_POS if polarity == POS else SHARED_NEG
        own = self.lex.pos if polarity == POS else self.lex.neg
        return self.pick(shared if self._shared_aspect or self.rng.random() < 0.4 else own)

    def be(self, plural: bool) -> str:
        past = self.rng.random() < 0.5
        if plural:
            return "were" if past else "are"
        return "was" if past else "is"

    def intensify(self, adjective: str) -> str:
        if self.rng.random() < 0.4 and " " not in adjective:
            return f"{self.pick(INTENSIFIERS)} {adjective}"
        return adjective

    def product(self) -> str:
        """The product of the text being built (drawn once per text by :meth:`new_text`)."""
        return self.current_product

    def new_text(self) -> None:
        self.current_product = self.pick(self.lex.products)

    # -- clauses ---------------------------------------------------------------------------------
    def evaluation(self, polarity: int) -> str:
        aspect, plural = self.aspect()
        adjective = self.intensify(self.adjective(polarity))
        form = self.rng.randrange(3)
        if form == 0:
            return f"the {aspect} {self.be(plural)} {adjective}"
        if form == 1:
            return f"the {aspect} of this {self.product()} {self.be(plural)} {adjective}"
        return f"i found the {aspect} {adjective}"

    def negated(self, polarity: int) -> str:
        """Express ``polarity`` by negating an adjective of the other polarity."""
        aspect, plural = self.aspect()
        adjective = self.adjective(1 - polarity)
        be = self.be(plural)
        template = NEGATED_FORMS[self.rng.randrange(len(NEGATED_FORMS))]
        degree = self.pick(DEGREES) if "{degree}" in template else ""
        return template.format(aspect=aspect, be=be, adjective=adjective, degree=degree)

    def verb(self, polarity: int) -> str:
        aspect, _ = self.aspect()
        if self.rng.random() < 0.25:  # negated verb of the other polarity
            verbs = NEGATABLE_NEG_VERBS if polarity == POS else NEGATABLE_POS_VERBS
            aux = self.pick(("did not", "didn't", "do not", "don't"))
            return f"i {aux} {self.pick(verbs)} the {aspect}"
        verbs = POS_VERBS if polarity == POS else NEG_VERBS
        return f"i {self.pick(verbs)} the {aspect}"

    def verdict(self, polarity: int) -> str:
        if self.film or self.lex.pos_verdicts:
            pool = self.lex.pos_verdicts or FILM_POS_VERDICTS
            if polarity == NEG:
                pool = self.lex.neg_verdicts or FILM_NEG_VERDICTS
        else:
            pool = PRODUCT_POS_VERDICTS if polarity == POS else PRODUCT_NEG_VERDICTS
        aspect, _ = self.aspect()
        return self.pick(pool).format(product=self.product(), aspect=aspect)

    def simple(self, polarity: int) -> str:
        kind = self.rng.random()
        if kind < 0.6:
            return self.evaluation(polarity)
        if kind < 0.75:
            return self.negated(polarity)
        if kind < 0.9:
            return self.verb(polarity)
        return self.verdict(polarity)

    def contrast(self, polarity: int) -> str:
        """A clause of the other polarity, then the deciding one (or the reverse with *even though*)."""
        other = self.simple(1 - polarity)
        main = self.simple(polarity)
        return CONTRAST_FORMS[self.rng.randrange(len(CONTRAST_FORMS))].format(other=other, main=main)

    def filler(self) -> str:
        return self.pick(self.lex.fillers).format(product=self.product())

    # -- whole texts -----------------------------------------------------------------------------
    def main_clause(self, polarity: int) -> tuple[str, int]:
        """(clause, label); a few mixed clauses get a random label."""
        r = self.rng.random()
        if r < MIXED_RATE:
            q = self.rng.randrange(2)
            return f"{self.simple(q)}. {self.simple(1 - q)}", self.rng.randrange(2)
        if r < MIXED_RATE + 0.2:
            return self.contrast(polarity), polarity
        return self.simple(polarity), polarity

    def review(self, polarity: int) -> tuple[list[str], int]:
        """Sentences of a product review and its label (before label noise)."""
        self.new_text()
        sentences = []
        if self.rng.random() < 0.45:
            sentences.append(self.filler())
        main, label = self.main_clause(polarity)
        sentences.append(main)
        if self.rng.random() < 0.4:
            sentences.append(self.simple(label))
        if self.rng.random() < 0.2:
            sentences.append(self.filler())
        return sentences, label

    def snippet(self, polarity: int) -> tuple[list[str], int]:
        """One-sentence film snippet (SST-2 style): main clause plus an optional framing phrase."""
        self.new_text()
        main, label = self.main_clause(polarity)
        if self.rng.random() < 0.45:  # a second clause of the same polarity
            joiner = self.pick((", and", ", and", "; in short,", ". plus,"))
            second = self.evaluation(label) if self.rng.random() < 0.7 else self.verdict(label)
            main = f"{main}{joiner} {second}"
        elif self.rng.random() < 0.4:
            main = f"{self.filler()}, {main}"
        return [main], label


def _review_text(sentences: Sequence[str], rng: random.Random) -> str:
    """Sentence case, a period (sometimes ``!``) after each sentence."""
    out = []
    for sentence in sentences:
        for part in sentence.split(". "):
            part = part.strip()
            part = part[0].upper() + part[1:]
            part = re.sub(r"\bi\b", "I", part)
            end = "!" if rng.random() < 0.08 else "."
            out.append(part + end)
    return " ".join(out)


def _sst_text(sentences: Sequence[str]) -> str:
    """SST-2 style: lower case, punctuation and clitics split off by spaces."""
    text = " . ".join(sentences) + " ."
    text = re.sub(r"([.,;])", r" \1 ", text)
    text = re.sub(r"(\w)n't\b", r"\1 n't", text)  # "can't" -> "ca n't", as in the treebank
    text = re.sub(r"(\w)'s\b", r"\1 's", text)
    return re.sub(r"\s+", " ", text.lower()).strip()


@dataclasses.dataclass
class Item:
    """One generated text with its label and domain."""

    text: str
    label: int
    domain: str


def generate_domain(
    domain: str, n: int, rng: random.Random, style: str, seen: set[str], min_words: int = 0,
    max_words: int = 45,
) -> list[Item]:
    """``n`` unique texts of one domain, labels balanced before noise, in random order."""
    grammar = _Grammar(LEXICONS[domain], rng, film=domain in ("SST-2", "MR"))
    polarities = [POS] * (n // 2) + [NEG] * (n - n // 2)
    rng.shuffle(polarities)
    items = []
    for polarity in polarities:
        for _ in range(1000):
            if style == "sst":
                sentences, label = grammar.snippet(polarity)
                text = _sst_text(sentences)
            else:
                sentences, label = grammar.review(polarity)
                text = _review_text(sentences, rng)
            words = len(text.split())
            if text not in seen and min_words <= words <= max_words:
                break
        else:
            raise RuntimeError(f"could not generate a new unique {domain} text")
        seen.add(text)
        if rng.random() < LABEL_NOISE:
            label = 1 - label
        items.append(Item(text, label, domain))
    return items



def write_lines(path: str, lines: Sequence[str]) -> None:
    """Write ``lines`` with ``\n`` endings (UTF-8), creating the directory."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for line in lines:
            f.write(line + "\n")
