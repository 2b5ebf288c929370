"""Deterministic synthetic sentiment data, laid out exactly like the real datasets.

Third-party corpora cannot be shipped, so the default data is generated from templates and word
lists: English product reviews in the four Amazon domains (books, dvd, electronics, kitchen) and
three stand-ins for the MFT group g1 (SST-2, MR, CR). The grammar is built so that single words do not
decide the label:

* positive and negative words appear in both classes: negation (``the plot was not gripping``),
  contrast where the clause after *but / however / yet* (or the main clause of *although / even
  though*) decides (``the plot was dull but the acting was superb``);
* intensifiers, neutral filler sentences, aspects and adjectives shared across domains;
* about 5% mixed reviews without a contrast marker (either label) and 3% label noise.

A bag-of-words classifier therefore stays well below a fine-tuned BERT, and nothing reaches 100%.

Output (``--out data``)::

    SENTI/{train,dev}.tsv                           guid text_a text_b label domain (1600 / 400)
    glue_data/SST-2/{train,dev}.tsv                 sentence label (1200 / 300)
    k-shot-single/{SST-2,MR,CR}/16-{42,21,12}/{train,dev,test}.csv   text domain label
    k-shot-cross/g1/16-{42,21,12}/{train,dev}.csv                    text domain label

Run: ``python -m model_compress.data.synthetic --out data`` (or ``run_scripts/make_default_data.sh``).
The same arguments always produce the same bytes.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import random
import re
from collections.abc import Sequence

from model_compress.data.kshot import sample_k_shot, write_mft_csv
from model_compress.data.processors import InputExample

POS, NEG = 1, 0
LABEL_NOISE = 0.03
MIXED_RATE = 0.05
KSHOT_SEEDS = (42, 21, 12)
KSHOT_K = 16


@dataclasses.dataclass(frozen=True)
class Lexicon:
    """Words of one domain. Aspects ending in ``*`` are plural."""

    products: tuple[str, ...]
    aspects: tuple[str, ...]
    pos: tuple[str, ...]
    neg: tuple[str, ...]
    fillers: tuple[str, ...]
    pos_verdicts: tuple[str, ...] = ()
    neg_verdicts: tuple[str, ...] = ()


SHARED_ASPECTS = ("price", "quality", "packaging", "customer service", "overall design", "value",
                  "instructions*", "delivery")
SHARED_POS = ("great", "excellent", "good", "wonderful", "fantastic", "impressive", "solid", "superb",
              "nice", "outstanding", "perfect", "decent", "amazing", "lovely")
SHARED_NEG = ("terrible", "awful", "bad", "poor", "disappointing", "horrible", "mediocre", "lousy",
              "dreadful", "weak", "frustrating", "subpar", "pathetic", "annoying")
INTENSIFIERS = ("really", "very", "truly", "incredibly", "extremely", "quite", "pretty", "absolutely",
                "so", "rather", "surprisingly", "genuinely")
POS_VERBS = ("loved", "enjoyed", "really liked", "adored", "appreciated", "was impressed by")
NEG_VERBS = ("hated", "disliked", "could not stand", "was annoyed by", "was let down by", "regretted")
NEGATABLE_POS_VERBS = ("like", "enjoy", "love", "care for", "appreciate")
NEGATABLE_NEG_VERBS = ("mind", "dislike", "hate", "regret")
PRODUCT_POS_VERDICTS = (
    "i would recommend this {product} to anyone", "worth every penny", "i would buy it again",
    "this {product} is a keeper", "five stars from me", "no complaints so far",
    "i can't complain about the {aspect}", "you will not regret buying this {product}",
    "best {product} i have owned", "it exceeded my expectations",
)
PRODUCT_NEG_VERDICTS = (
    "a complete waste of money", "i returned it after a week", "do not buy this {product}",
    "i want my money back", "one star is generous", "i would not recommend this {product}",
    "save your money", "not worth the price", "this {product} is not worth it",
    "it did not live up to the hype",
)
FILM_POS_VERDICTS = (
    "a must see", "one of the best films of the year", "i would happily watch it again",
    "worth the price of admission", "you will not regret seeing it", "it never loses its grip",
)
FILM_NEG_VERDICTS = (
    "skip this one", "a waste of two hours", "i would not watch it again", "not worth your time",
    "it never finds its footing", "i nearly walked out",
)
# Ways to say the opposite of an adjective of the other polarity, and to join two clauses of opposite
# polarity (`main` decides the label).
NEGATED_FORMS = (
    "the {aspect} {be} not {adjective}",
    "the {aspect} {be}n't {adjective}",
    "the {aspect} {be} not {degree} {adjective}",
    "i would not call the {aspect} {adjective}",
    "the {aspect} {be} never {adjective}",
    "nothing about the {aspect} {be} {adjective}",
)
DEGREES = ("at all", "remotely", "even slightly")
CONTRAST_FORMS = (
    "{other}, but {main}",
    "{other}. however, {main}",
    "although {other}, {main}",
    "{main} even though {other}",
    "{other}, yet {main}",
    "{main}, despite the fact that {other}",
    "{other}, but in the end {main}",
)

LEXICONS: dict[str, Lexicon] = {
    "books": Lexicon(
        products=("book", "novel", "memoir", "biography", "paperback", "thriller", "story collection"),
        aspects=("plot", "writing", "prose", "ending", "dialogue", "pacing", "story", "narrator",
                 "characters*", "chapters*", "first half", "world building", "research", "author's voice"),
        pos=("gripping", "engaging", "moving", "insightful", "well written", "thought provoking",
             "compelling", "beautifully written", "witty", "vivid", "hard to put down"),
        neg=("tedious", "dull", "predictable", "shallow", "confusing", "poorly edited", "boring",
             "clumsy", "repetitive", "flat", "hard to follow"),
        fillers=("i read this {product} on vacation", "my book club picked this {product}",
                 "i bought the {product} after reading a review", "i finished it in two evenings",
                 "it was a gift from my sister", "i have read most of the author's other books",
                 "i listened to part of it as an audiobook"),
    ),
    "dvd": Lexicon(
        products=("movie", "film", "dvd", "documentary", "box set", "series", "concert dvd"),
        aspects=("acting", "plot", "soundtrack", "picture quality", "cast", "ending", "cinematography",
                 "script", "director's commentary", "special effects*", "special features*", "subtitles*",
                 "second season", "menu"),
        pos=("captivating", "hilarious", "stunning", "well acted", "entertaining", "charming",
             "suspenseful", "beautifully shot", "touching", "clever", "crisp"),
        neg=("unwatchable", "boring", "cheesy", "forgettable", "grainy", "overacted", "predictable",
             "sloppy", "painfully slow", "dull", "choppy"),
        fillers=("we watched this {product} on a friday night", "i rented the {product} first",
                 "my kids asked for this {product}", "i saw it in theaters years ago",
                 "the disc arrived on time", "i watched it with my family", "it came in a plain case"),
    ),
    "electronics": Lexicon(
        products=("headphones", "camera", "router", "speaker", "tv", "keyboard", "charger", "mp3 player",
                  "remote", "tablet"),
        aspects=("battery life", "screen", "sound quality", "charger", "setup", "signal", "software",
                 "bluetooth connection", "buttons*", "speakers*", "picture", "fan", "cable", "range"),
        pos=("crisp", "responsive", "fast", "sturdy", "reliable", "intuitive", "powerful", "clear",
             "easy to set up", "rock solid", "long lasting"),
        neg=("laggy", "unreliable", "flimsy", "noisy", "sluggish", "dim", "buggy", "fragile",
             "hard to set up", "dead on arrival", "short lived"),
        fillers=("i bought this {product} for my home office", "i use the {product} every day",
                 "i replaced my old {product} with this one", "it arrived in two days",
                 "i have had it for about a month", "my son uses it for school", "i ordered it on sale"),
    ),
    "kitchen": Lexicon(
        products=("blender", "knife set", "frying pan", "coffee maker", "toaster", "kettle", "mixer",
                  "pot", "cutting board", "food processor"),
        aspects=("blade", "handle", "lid", "nonstick coating", "motor", "finish", "temperature control",
                 "carafe", "seal", "base", "cord", "knives*", "attachments*", "drip tray"),
        pos=("sturdy", "sharp", "easy to clean", "durable", "powerful", "well made", "heavy duty",
             "quiet", "sleek", "reliable", "dishwasher safe"),
        neg=("flimsy", "dull", "leaky", "rusty", "hard to clean", "wobbly", "cheaply made", "noisy",
             "sticky", "fragile", "useless"),
        fillers=("i bought this {product} for our new apartment", "i cook with it most nights",
                 "we got the {product} as a wedding gift", "i replaced an older {product} with this one",
                 "it arrived well packed", "i have used it for a few weeks", "my wife picked it out"),
    ),
    # MFT group g1 stand-ins
    "SST-2": Lexicon(
        products=("movie", "film", "picture", "comedy", "drama", "thriller"),
        aspects=("performances*", "script", "direction", "story", "humor", "pacing", "ending", "cast",
                 "screenplay", "lead actor", "visuals*", "dialogue", "score", "climax"),
        pos=("affecting", "funny", "smart", "touching", "inventive", "charming", "gripping",
             "beautifully acted", "witty", "heartfelt", "wonderfully strange"),
        neg=("tedious", "flat", "lifeless", "contrived", "clumsy", "pretentious", "hollow",
             "overlong", "stale", "muddled", "mind numbing"),
        fillers=("as a whole", "in the end", "frankly", "from start to finish", "for the most part"),
        pos_verdicts=FILM_POS_VERDICTS,
        neg_verdicts=FILM_NEG_VERDICTS,
    ),
    "MR": Lexicon(
        products=("film", "movie", "feature", "sequel", "remake", "documentary"),
        aspects=("story", "acting", "plot", "characters*", "jokes*", "photography", "twist", "score",
                 "final act", "central performance", "premise", "editing", "set pieces*"),
        pos=("engrossing", "moving", "smart", "hilarious", "sharp", "poignant", "absorbing",
             "thrilling", "delightful", "well crafted", "refreshing"),
        neg=("dull", "silly", "predictable", "incoherent", "lazy", "shallow", "plodding",
             "tiresome", "forced", "bland", "ridiculous"),
        fillers=("this is the director's third film", "it runs almost two hours",
                 "the {product} is based on a true story", "it opens this weekend",
                 "the {product} is a period piece", "it is a loose adaptation of a novel"),
        pos_verdicts=FILM_POS_VERDICTS,
        neg_verdicts=FILM_NEG_VERDICTS,
    ),
    "CR": Lexicon(
        products=("phone", "camera", "router", "mp3 player", "dvd player", "printer"),
        aspects=("battery life", "screen", "zoom", "menu", "reception", "software", "picture quality",
                 "size", "buttons*", "controls*", "flash", "headset", "memory card slot"),
        pos=("excellent", "responsive", "compact", "intuitive", "bright", "reliable", "fast", "clear",
             "easy to use", "sturdy", "sharp"),
        neg=("awkward", "unreliable", "clunky", "slow", "dim", "buggy", "flimsy", "confusing",
             "hard to use", "cheap feeling", "blurry"),
        fillers=("i bought this {product} last month", "i use it mostly for travel",
                 "i upgraded from an older model", "i have owned it for six weeks",
                 "my husband bought the {product} for me"),
    ),
}
SENTI_DOMAINS = ("books", "dvd", "electronics", "kitchen")
G1_DOMAINS = ("SST-2", "MR", "CR")


# ---------------------------------------------------------------------------------------------------
# Grammar
# ---------------------------------------------------------------------------------------------------
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
class _Item:
    text: str
    label: int
    domain: str


def generate_domain(
    domain: str, n: int, rng: random.Random, style: str, seen: set[str], min_words: int = 0,
    max_words: int = 45,
) -> list[_Item]:
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
        items.append(_Item(text, label, domain))
    return items


# ---------------------------------------------------------------------------------------------------
# Datasets
# ---------------------------------------------------------------------------------------------------
def _write_lines(path: str, lines: Sequence[str]) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for line in lines:
            f.write(line + "\n")


def make_senti(out: str, seed: int, n_train: int = 1600, n_dev: int = 400) -> dict[str, int]:
    """``<out>/SENTI/{train,dev}.tsv`` in the Amazon multi-domain layout."""
    rng = random.Random(f"senti-{seed}")
    seen: set[str] = set()
    splits: dict[str, list[_Item]] = {"train": [], "dev": []}
    per_domain = {"train": n_train // len(SENTI_DOMAINS), "dev": n_dev // len(SENTI_DOMAINS)}
    for domain in SENTI_DOMAINS:
        for split in ("train", "dev"):
            splits[split].extend(generate_domain(domain, per_domain[split], rng, "review", seen))
    counts = {}
    for split, items in splits.items():
        rng.shuffle(items)
        lines = ["guid\ttext_a\ttext_b\tlabel\tdomain"]
        for i, item in enumerate(items):
            label = "positive" if item.label == POS else "negative"
            lines.append(f"{split}-{i:05d}\t{item.text}\t\t{label}\t{item.domain}")
        _write_lines(os.path.join(out, "SENTI", f"{split}.tsv"), lines)
        counts[f"SENTI/{split}.tsv"] = len(items)
    return counts


def make_glue_sst2(out: str, seed: int, n_train: int = 1200, n_dev: int = 300) -> dict[str, int]:
    """``<out>/glue_data/SST-2/{train,dev}.tsv`` with a ``sentence<TAB>label`` header."""
    rng = random.Random(f"glue-sst2-{seed}")
    seen: set[str] = set()
    counts = {}
    for split, n in (("train", n_train), ("dev", n_dev)):
        items = generate_domain("SST-2", n, rng, "sst", seen, min_words=8, max_words=30)
        lines = ["sentence\tlabel"] + [f"{item.text}\t{item.label}" for item in items]
        _write_lines(os.path.join(out, "glue_data", "SST-2", f"{split}.tsv"), lines)
        counts[f"glue_data/SST-2/{split}.tsv"] = n
    return counts


def make_k_shot(
    out: str, seed: int, k: int = KSHOT_K, seeds: Sequence[int] = KSHOT_SEEDS, pool_per_class: int = 100,
    n_test: int = 200,
) -> dict[str, int]:
    """K-shot folders for the g1 group (cross) and each of its domains (single)."""
    rng = random.Random(f"kshot-{seed}")
    pool: list[InputExample] = []
    tests: dict[str, list[InputExample]] = {}
    for domain in G1_DOMAINS:
        seen: set[str] = set()
        style = "sst" if domain == "SST-2" else "review"
        limits = {"min_words": 8, "max_words": 30} if style == "sst" else {"max_words": 40}
        for name, n in (("pool", 2 * pool_per_class), ("test", n_test)):
            items = generate_domain(domain, n, rng, style, seen, **limits)
            examples = [InputExample(f"{domain}-{name}-{i}", it.text, None, str(it.label), domain)
                        for i, it in enumerate(items)]
            if name == "pool":
                pool.extend(examples)
            else:
                tests[domain] = examples
    counts = {}
    for kseed in seeds:
        train, dev = sample_k_shot(pool, k, kseed)
        folder = f"{k}-{kseed}"
        cross = os.path.join(out, "k-shot-cross", "g1", folder)
        write_mft_csv(os.path.join(cross, "train.csv"), train)
        write_mft_csv(os.path.join(cross, "dev.csv"), dev)
        counts[f"k-shot-cross/g1/{folder}/train.csv"] = len(train)
        counts[f"k-shot-cross/g1/{folder}/dev.csv"] = len(dev)
        for domain in G1_DOMAINS:
            single = os.path.join(out, "k-shot-single", domain, folder)
            parts = {
                "train": [e for e in train if e.domain == domain],
                "dev": [e for e in dev if e.domain == domain],
                "test": tests[domain],
            }
            for split, examples in parts.items():
                write_mft_csv(os.path.join(single, f"{split}.csv"), examples)
                counts[f"k-shot-single/{domain}/{folder}/{split}.csv"] = len(examples)
    return counts


def make_all(out: str, seed: int = 0) -> dict[str, int]:
    """Write every default dataset under ``out``; return file -> number of rows."""
    counts = {}
    counts.update(make_senti(out, seed))
    counts.update(make_glue_sst2(out, seed))
    counts.update(make_k_shot(out, seed))
    return counts


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Write the deterministic synthetic default data.")
    parser.add_argument("--out", default="data", help="output root (default: data)")
    parser.add_argument("--seed", type=int, default=0, help="generator seed (default: 0, the shipped data)")
    args = parser.parse_args(argv)
    counts = make_all(args.out, args.seed)
    for path, n in sorted(counts.items()):
        print(f"{n:6d}  {os.path.join(args.out, path)}")


if __name__ == "__main__":
    main()
