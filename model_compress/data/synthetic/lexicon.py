"""Word tables of the synthetic data: one Lexicon per domain, shared words, templates and rates."""

from __future__ import annotations

import dataclasses

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

