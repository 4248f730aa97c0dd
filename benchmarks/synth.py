"""Seeded text synthesis for the benchmark generator: captions, questions, answers, URLs.

The decode and audit cost of a LLaVA file depends on record count, string lengths, escapes (``\\n``,
non-ASCII ``\\uXXXX``) and the number of turns, not on what the words mean; so the text is built
from small word pools with realistic lengths and style, fast enough to write ~1 GB in well under a
minute on one core.
"""

from __future__ import annotations

import random


def _words(text: str) -> list[str]:
    return text.split()


_NOUNS = _words(
    "man woman person child dog cat bus train car truck bicycle motorcycle kite umbrella table "
    "chair pizza sandwich plate bowl cup bottle street road sidewalk building house window door "
    "tree field grass beach ocean wave boat bird horse cow sheep giraffe elephant zebra bear "
    "skateboard surfboard tennis racket ball frisbee laptop phone keyboard clock vase bed couch "
    "kitchen bathroom sink toilet oven refrigerator cake donut banana apple orange broccoli "
    "carrot sign traffic light fire hydrant bench parking meter suitcase backpack handbag tie "
    "mountain snow river bridge city park garden fence wall stage crowd player team jacket shirt"
)
_ADJECTIVES = _words(
    "large small red blue green white black yellow wooden old young busy empty colorful tall "
    "modern vintage bright dark crowded quiet snowy sunny rainy open closed round square tiny "
    "happy smiling parked brown grey golden"
)
_VERBS = _words(
    "standing sitting walking riding holding eating playing flying carrying looking waiting "
    "driving crossing parked resting lying watching running jumping smiling posing"
)
_PREPOSITIONS = _words("on in near next to under behind beside with at along across above")
_FUNCTION = _words("the a an of and to with in on is are there this that its their")
_NON_ASCII = ("café", "©", "®", "naïve", "über", "सिंह", "São Paulo", "Zürich", "—")
_HOSTS = (
    "https://i.pinimg.com/736x/{h2}/{h2}/{h2}/{h32}--{slug}.jpg",
    "http://l7.alamy.com/zooms/{h32}/{slug}-{tag}.jpg",
    "https://media.gettyimages.com/photos/{slug}-picture-id{num}?s=612x612",
    "https://thumb{d}.shutterstock.com/display_pic_with_logo/{num}/{num}/stock-photo-{slug}-{num}.jpg",
    "http://i.dailymail.co.uk/i/pix/{year}/{mm}/{mm}/{num}_{slug}.jpg",
    "http://www.{word}{word}.com/wp-content/uploads/{year}/{mm}/{slug}.jpg",
    "https://{word}{word}.files.wordpress.com/{year}/{mm}/{slug}.jpg?w=860&h=645",
    "http://ec1.ostkcdn.com/images/products/{num}/P{num}.jpg",
)


class TextSynth:
    """All text of one generated file comes from one seeded instance, so files are reproducible."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        rng = self.rng
        self._sentences = [self._sentence() for _ in range(20_000)]
        self._questions = [self._question() for _ in range(5_000)]
        rng.shuffle(self._sentences)

    # ---- short captions ---------------------------------------------------------------------------
    def _phrase(self) -> str:
        rng = self.rng
        words = [rng.choice(("a", "the", "an old", "two", "a young")), rng.choice(_NOUNS)]
        if rng.random() < 0.6:
            words.insert(1, rng.choice(_ADJECTIVES))
        if rng.random() < 0.7:
            words += [rng.choice(_VERBS), rng.choice(_PREPOSITIONS), "the", rng.choice(_NOUNS)]
        if rng.random() < 0.6:
            words += [rng.choice(_PREPOSITIONS), "a", rng.choice(_ADJECTIVES), rng.choice(_NOUNS)]
        if rng.random() < 0.35:
            words += [
                "and",
                rng.choice(("a", "the", "two")),
                rng.choice(_ADJECTIVES),
                rng.choice(_NOUNS),
            ]
        if rng.random() < 0.002:
            words.append(rng.choice(_NON_ASCII))
        return " ".join(words)

    def cc3m_caption(self) -> str:
        """CC-3M style: lower case, tokenized (`` 's``, `` .``), hypernymized (``person``)."""
        text = self._phrase()
        if self.rng.random() < 0.3:
            text = "person 's " + text.split(" ", 1)[1]
        if self.rng.random() < 0.45:
            text += f" during {self.rng.choice(_FUNCTION[:3])} {self.rng.choice(_NOUNS)} event"
        return text + " ." if self.rng.random() < 0.5 else text

    def blip_caption(self, short: bool = False) -> str:
        """BLIP/LAION style: lower case, no final period, sometimes a comma-separated tail.

        ``short`` is the model-written BLIP caption of CC-3M metadata (one plain clause).
        """
        rng = self.rng
        if short:
            return f"a {rng.choice(_ADJECTIVES)} {rng.choice(_NOUNS)} {rng.choice(_VERBS)} on the {rng.choice(_NOUNS)}"
        text = self._phrase()
        if self.rng.random() < 0.25:
            text += ", " + self.rng.choice(_NOUNS) + " " + self.rng.choice(_NOUNS)
        return text

    # ---- instruct text ----------------------------------------------------------------------------
    def _sentence(self) -> str:
        rng = self.rng
        words = [
            rng.choice(_FUNCTION + _NOUNS + _ADJECTIVES + _VERBS) for _ in range(rng.randint(8, 24))
        ]
        words[0] = words[0].capitalize()
        return " ".join(words) + rng.choice((".", ".", ".", "!"))

    def _question(self) -> str:
        rng = self.rng
        return rng.choice(
            (
                f"What is the {rng.choice(_NOUNS)} doing in the image?",
                f"What color is the {rng.choice(_NOUNS)}?",
                f"How many {rng.choice(_NOUNS)}s are visible in the picture?",
                f"Where is the {rng.choice(_ADJECTIVES)} {rng.choice(_NOUNS)} located?",
                f"What might be the reason for the {rng.choice(_NOUNS)} being "
                f"{rng.choice(_VERBS)} {rng.choice(_PREPOSITIONS)} the {rng.choice(_NOUNS)}?",
                f"Is the {rng.choice(_NOUNS)} {rng.choice(_VERBS)}?",
                f"What can you infer about the {rng.choice(_NOUNS)} from the scene?",
            )
        )

    def question(self) -> str:
        return self.rng.choice(self._questions)

    def answer(self, sentences: int, paragraphs: int = 1) -> str:
        """GPT-4 style answer of ``sentences`` sentences, paragraphs separated by a blank line."""
        picked = self.rng.choices(self._sentences, k=sentences)
        if paragraphs <= 1 or sentences < 2:
            return " ".join(picked)
        cut = max(1, sentences // paragraphs)
        blocks = [" ".join(picked[i : i + cut]) for i in range(0, sentences, cut)]
        return "\n\n".join(blocks)

    # ---- URLs -------------------------------------------------------------------------------------
    def url(self) -> str:
        """A source URL shaped like the ones in the CC-3M TSV (about 100 characters)."""
        rng = self.rng
        slug = "-".join(rng.choice(_NOUNS + _ADJECTIVES + _VERBS) for _ in range(rng.randint(3, 8)))
        return rng.choice(_HOSTS).format(
            h2=f"{rng.getrandbits(8):02x}",
            h32=f"{rng.getrandbits(128):032x}",
            slug=slug,
            tag=f"{rng.getrandbits(24):06x}",
            num=rng.randint(10_000, 999_999_999),
            d=rng.randint(1, 9),
            year=rng.randint(2008, 2018),
            mm=f"{rng.randint(1, 12):02d}",
            word=rng.choice(_NOUNS),
        )
