"""The behavioural test cases of the movie-review sentiment model, after CheckList.

Ribeiro, Wu, Guestrin and Singh, "Beyond Accuracy: Behavioral Testing of NLP Models with
CheckList", ACL 2020. Each case belongs to a capability and has one of three test types:

* ``MFT`` (minimum functionality test): a short text and the label a human gives it
  (1 = positive, 0 = negative). Fails when the model's label (p(positive) >= 0.5) differs.
* ``INV`` (invariance test): an original text and a perturbation that must not change the
  label (another actor's name, another number, other casing, a typo...). Fails when the
  model's labels of the two differ; ``expected`` is unused (None), as in CheckList.
* ``DIR`` (directional test): an original text and the original with a clearly positive or
  negative sentence appended. ``expected`` holds the direction p(positive) should move
  (1 = up, 0 = down); the case fails when p moves the other way by more than
  ``DIR_TOLERANCE``.

Every case is generated from the templates and small lexicons below, sampled with
``random.Random``: ``build_suite(seed)`` returns the same cases for the same seed. The texts
are short, plain English whose labels a human would not dispute: no sarcasm, and no mixed
verdicts but in ``contrast``, where the deciding clause (after "but"/"yet", or the main
clause beside "although"/"even though") is about the film as a whole, and in the DIR
perturbations, which append a verdict to any review by design. A validation suite: never
train on it.
"""

import dataclasses
import itertools
import random
import re
import types
from collections.abc import Callable, Iterable, Sequence

MFT, INV, DIR = "mft", "inv", "dir"
TEST_TYPES = (MFT, INV, DIR)

# A DIR case fails when p(positive) moves against its direction by more than this.
DIR_TOLERANCE = 0.1
# Cases generated per capability (fewer only where a template pool is smaller).
CASES_PER_CAPABILITY = 60


@dataclasses.dataclass(frozen=True)
class Capability:
  """One behaviour under test.

  Attributes:
    name: stable snake_case identifier (the key of failure rates and thresholds).
    test_type: ``MFT``, ``INV`` or ``DIR``.
    description: one line saying what a passing model does.
  """

  name: str
  test_type: str
  description: str


CAPABILITIES: tuple[Capability, ...] = (
  Capability("negated_positive", MFT, "A negated positive statement is negative."),
  Capability("negated_negative", MFT, "A negated negative statement is positive."),
  Capability("not_at_all", MFT, "'not ... at all' negates the adjective or verb it wraps."),
  Capability("double_negation", MFT, "Two negations cancel out."),
  Capability(
    "contrast",
    MFT,
    "The clause after 'but'/'yet', or the main clause beside 'although', decides the label.",
  ),
  Capability("intensity", MFT, "Intensifiers and downtoners keep the adjective's polarity."),
  Capability("short_review", MFT, "One-line reviews of one to six words get the right label."),
  Capability("inv_names", INV, "Swapping an actor's or director's name keeps the label."),
  Capability("inv_titles", INV, "Swapping the movie's title keeps the label."),
  Capability("inv_numbers", INV, "Changing a count, a year or a running time keeps the label."),
  Capability("inv_casing", INV, "Upper, lower or title casing keeps the label."),
  Capability("inv_punctuation", INV, "Adding or removing trailing punctuation keeps the label."),
  Capability("inv_typo", INV, "One swap of adjacent characters in a neutral word keeps the label."),
  Capability("dir_add_positive", DIR, "Appending a positive sentence does not lower p(positive)."),
  Capability("dir_add_negative", DIR, "Appending a negative sentence does not raise p(positive)."),
)


@dataclasses.dataclass(frozen=True)
class Case:
  """One behavioural test case.

  Attributes:
    capability: the ``Capability.name`` it tests.
    test_type: ``MFT``, ``INV`` or ``DIR``.
    text: the review (for INV and DIR, the original).
    expected: MFT: the label, 0 (negative) or 1 (positive). DIR: the direction
      p(positive) should move, 1 (up) or 0 (down). INV: None.
    perturbed: INV and DIR: the perturbed review, different from ``text``. MFT: None.

  Raises:
    ValueError: on an unknown test type, or fields that do not fit it (an MFT case
      without a 0/1 label or with a perturbation, an INV or DIR case without a
      perturbation different from the text, an INV case with a label, a DIR case
      without a direction).
  """

  capability: str
  test_type: str
  text: str
  expected: int | None = None
  perturbed: str | None = None

  def __post_init__(self):
    if self.test_type not in TEST_TYPES:
      raise ValueError(f"test_type must be one of {TEST_TYPES}, got {self.test_type!r}")
    if self.test_type == MFT:
      if self.expected not in (0, 1) or isinstance(self.expected, bool):
        raise ValueError(f"an MFT case needs expected 0 or 1, got {self.expected!r}")
      if self.perturbed is not None:
        raise ValueError("an MFT case has no perturbed text")
      return
    if self.perturbed is None or self.perturbed == self.text:
      raise ValueError(f"an {self.test_type} case needs a perturbed text different from text")
    if self.test_type == INV and self.expected is not None:
      raise ValueError(f"an INV case has no expected label, got {self.expected!r}")
    if self.test_type == DIR and (self.expected not in (0, 1) or isinstance(self.expected, bool)):
      raise ValueError(f"a DIR case needs expected direction 0 or 1, got {self.expected!r}")


# --- lexicons -------------------------------------------------------------------------

MOVIE_NOUNS = ("movie", "film")
# Aspects of a film that any adjective below can describe ("The {aspect} was ...").
ASPECTS = (
  "plot",
  "acting",
  "script",
  "soundtrack",
  "cinematography",
  "dialogue",
  "ending",
  "pacing",
  "direction",
  "story",
)
# Subjects (the film or an aspect) that read naturally with the milder adjectives of the
# negation tests ("The ending was not engaging.").
STORY_ASPECTS = ("movie", "film", "plot", "story", "acting", "script", "ending", "dialogue")

STRONG_POSITIVE = ("great", "wonderful", "superb", "excellent", "brilliant", "fantastic")
STRONG_NEGATIVE = ("awful", "terrible", "dreadful", "dull", "weak", "poor")
# Adjectives whose negation is clearly the opposite verdict ("not good" is negative).
NEGATABLE_POSITIVE = ("good", "great", "enjoyable", "interesting", "impressive", "engaging")
NEGATABLE_NEGATIVE = ("bad", "boring", "dull", "disappointing")

INTENSIFIERS = ("really", "very", "truly", "extremely", "incredibly")
GRADABLE_POSITIVE = ("good", "enjoyable", "impressive", "engaging")
GRADABLE_NEGATIVE = ("bad", "boring", "dull", "disappointing", "weak")
EXTREME_INTENSIFIERS = ("absolutely", "utterly", "simply")
EXTREME_POSITIVE = ("wonderful", "brilliant", "superb", "fantastic")
EXTREME_NEGATIVE = ("dreadful", "awful", "terrible", "horrible")
# Downtoners that still leave a positive adjective positive ("pretty good").
POSITIVE_DOWNTONERS = ("fairly", "quite", "pretty", "rather")
# Downtoners that still leave a negative adjective negative ("a little dull").
NEGATIVE_DOWNTONERS = ("somewhat", "slightly", "rather", "a bit", "a little")

# Names and titles are invented and carry no sentiment.
NAMES = (
  "John Miller",
  "Emma Clarke",
  "David Chen",
  "Maria Lopez",
  "James Carter",
  "Sarah Johnson",
  "Michael Brown",
  "Anna Petrova",
  "Robert Ellis",
  "Laura Bennett",
  "Daniel Kim",
  "Sophie Martin",
  "Kevin Walsh",
  "Olivia Grant",
  "Ahmed Hassan",
  "Priya Sharma",
)
TITLES = (
  "The Glass House",
  "Paper Moons",
  "Iron Valley",
  "Northern Lights",
  "River of Stars",
  "The Clockmaker",
  "Ember Falls",
  "City of Mirrors",
  "Blue Horizon",
  "The Last Harbor",
  "Echoes of Summer",
  "The Long Road Home",
  "Midnight in Avalon",
  "Copper Canyon",
  "The Lighthouse Keeper",
  "Station Nine",
)

# Words a typo may hit: neutral, lower case, and in every generated review.
NEUTRAL_WORDS = frozenset({*ASPECTS, *MOVIE_NOUNS, "this"})

POSITIVE_ADDITIONS = (
  "Overall, I loved it.",
  "I would happily watch it again.",
  "Highly recommended.",
  "It is a real gem.",
  "I really enjoyed it.",
  "A wonderful experience.",
  "I will definitely watch it again.",
  "Ten out of ten.",
)
NEGATIVE_ADDITIONS = (
  "Overall, it was a waste of time.",
  "I regret watching it.",
  "What a disappointment.",
  "I was bored to tears.",
  "It was a real letdown.",
  "Avoid it at all costs.",
  "I hated every minute of it.",
  "A complete waste of two hours.",
)

SHORT_POSITIVE = (
  "Loved it!",
  "A masterpiece.",
  "Absolutely brilliant.",
  "Great movie.",
  "Highly recommended.",
  "Wonderful film.",
  "Two thumbs up.",
  "A must-see.",
  "Best film of the year.",
  "Brilliant!",
  "Superb.",
  "Fantastic acting.",
  "Pure joy.",
  "Simply wonderful.",
  "Loved every minute.",
  "A real gem.",
  "Utterly charming.",
  "Beautifully made.",
  "Great fun.",
  "Stunning.",
  "Excellent.",
  "Worth every penny.",
  "I loved this movie.",
  "An instant classic.",
  "Moving and beautiful.",
  "A delight.",
  "Truly great.",
  "Very enjoyable.",
  "Amazing film!",
  "Funny and touching.",
  "A triumph.",
  "Great story, great acting.",
  "Perfect.",
  "Well worth watching.",
  "Five stars.",
  "Ten out of ten.",
  "Thoroughly enjoyable.",
  "Wonderful performances.",
  "I would watch it again.",
  "A joy from start to finish.",
)
SHORT_NEGATIVE = (
  "Terrible.",
  "Waste of time.",
  "Awful movie.",
  "Boring.",
  "Hated it.",
  "A total mess.",
  "Truly dreadful.",
  "Avoid this one.",
  "Painfully dull.",
  "Worst film ever.",
  "Utterly pointless.",
  "A complete disaster.",
  "Horrible acting.",
  "So boring.",
  "Dreadful.",
  "Awful.",
  "Two hours wasted.",
  "Save your money.",
  "A huge disappointment.",
  "Unwatchable.",
  "Poorly made.",
  "Bad acting, worse script.",
  "Completely forgettable.",
  "Terrible script.",
  "I hated this movie.",
  "Zero stars.",
  "Tedious and dull.",
  "Absolute garbage.",
  "Laughably bad.",
  "What a waste.",
  "Very disappointing.",
  "Painful to watch.",
  "A boring mess.",
  "Predictable and boring.",
  "Dull.",
  "Terrible film.",
  "I fell asleep.",
  "Pure torture.",
  "Awful from start to finish.",
  "A waste of talent.",
)

# --- helpers --------------------------------------------------------------------------


def _a(phrase: str) -> str:
  """The phrase with its indefinite article: "a good", "an impressive"."""
  return ("an " if phrase[0].lower() in "aeiou" else "a ") + phrase


def _fill(template: str, **slots: Sequence[str]) -> list[str]:
  """``template`` formatted with every combination of the slot values, in product order."""
  names = list(slots)
  return [
    template.format(**dict(zip(names, values)))
    for values in itertools.product(*(slots[name] for name in names))
  ]


def _unique(texts: Iterable[str]) -> list[str]:
  """The texts without repeats, in first-seen order."""
  return list(dict.fromkeys(texts))


def _sample(rng: random.Random, pool: Iterable[str], n: int) -> list[str]:
  """Up to ``n`` distinct texts of ``pool``, drawn without replacement."""
  unique = _unique(pool)
  return rng.sample(unique, min(n, len(unique)))


# A builder draws a capability's cases as (text, expected, perturbed) triples.
_Triple = tuple[str, int | None, str | None]
_Builder = Callable[[random.Random, int], list[_Triple]]


def _mft(
  rng: random.Random, n: int, positives: Iterable[str], negatives: Iterable[str]
) -> list[_Triple]:
  """``n`` MFT triples, half positive and half negative where both pools are given."""
  positives, negatives = _unique(positives), _unique(negatives)
  overlap = set(positives) & set(negatives)
  if overlap:  # a bug in the templates, never the caller's input
    raise AssertionError(f"texts with both labels: {sorted(overlap)}")
  n_positive = n if not negatives else 0 if not positives else n // 2
  triples = [(text, 1, None) for text in _sample(rng, positives, n_positive)]
  triples += [(text, 0, None) for text in _sample(rng, negatives, n - n_positive)]
  rng.shuffle(triples)
  return triples


def _balanced(rng: random.Random, n: int, *pools: Sequence[str]) -> list[str]:
  """``n`` distinct texts drawn as evenly as possible from the pools, shuffled."""
  texts: list[str] = []
  for i, pool in enumerate(pools):
    share = n // len(pools) + (1 if i < n % len(pools) else 0)
    texts += _sample(rng, [text for text in pool if text not in texts], share)
  rng.shuffle(texts)
  return texts


# --- MFT ------------------------------------------------------------------------------


def _negated_positive(rng: random.Random, n: int) -> list[_Triple]:
  adj, aspect, noun = NEGATABLE_POSITIVE, STORY_ASPECTS, MOVIE_NOUNS
  a_adj = tuple(_a(word) for word in adj)
  negatives = [
    *_fill("The {aspect} was not {adj}.", aspect=aspect, adj=adj),
    *_fill("The {aspect} wasn't {adj}.", aspect=aspect, adj=adj),
    *_fill("The {aspect} is not {adj}.", aspect=aspect, adj=adj),
    *_fill("This is not {a_adj} {noun}.", a_adj=a_adj, noun=noun),
    *_fill("It was not {a_adj} {noun}.", a_adj=a_adj, noun=noun),
    *_fill("I don't think the {aspect} was {adj}.", aspect=aspect, adj=adj),
    *_fill("I did not enjoy this {noun}.", noun=noun),
    *_fill("I didn't enjoy the {aspect}.", aspect=aspect),
    *_fill("I did not like the {aspect}.", aspect=aspect),
    *_fill("I didn't care for the {aspect}.", aspect=aspect),
    *_fill("I would not recommend this {noun}.", noun=noun),
  ]
  return _mft(rng, n, [], negatives)


def _negated_negative(rng: random.Random, n: int) -> list[_Triple]:
  adj, aspect, noun = NEGATABLE_NEGATIVE, STORY_ASPECTS, MOVIE_NOUNS
  a_adj = tuple(_a(word) for word in adj)
  positives = [
    *_fill("The {aspect} was not {adj}.", aspect=aspect, adj=adj),
    *_fill("The {aspect} wasn't {adj}.", aspect=aspect, adj=adj),
    *_fill("The {aspect} is not {adj}.", aspect=aspect, adj=adj),
    *_fill("This is not {a_adj} {noun}.", a_adj=a_adj, noun=noun),
    *_fill("It was not {a_adj} {noun}.", a_adj=a_adj, noun=noun),
    "I didn't hate it.",
    *_fill("I did not hate this {noun}.", noun=noun),
    *_fill("I was not disappointed by the {aspect}.", aspect=aspect),
    *_fill("I did not regret watching this {noun}.", noun=noun),
    *_fill("I don't regret seeing this {noun}.", noun=noun),
    *_fill("The {noun} was not a waste of time.", noun=noun),
    *_fill("This {noun} is not a waste of time.", noun=noun),
    *_fill("The {noun} never felt {adj}.", noun=noun, adj=("boring", "dull")),
    "I wasn't bored for a second.",
    "I was never bored.",
  ]
  return _mft(rng, n, positives, [])


def _not_at_all(rng: random.Random, n: int) -> list[_Triple]:
  aspect, noun = STORY_ASPECTS, MOVIE_NOUNS
  positive_adj = ("good", "enjoyable", "interesting", "impressive", "engaging")
  negatives = [
    *_fill("The {aspect} was not {adj} at all.", aspect=aspect, adj=positive_adj),
    *_fill("It was not {adj} at all.", adj=positive_adj),
    *_fill("This {noun} is not {adj} at all.", noun=noun, adj=positive_adj),
    *_fill("I did not enjoy the {aspect} at all.", aspect=aspect),
    *_fill("I didn't like the {aspect} at all.", aspect=aspect),
    "I did not like it at all.",
    *_fill("I didn't enjoy this {noun} at all.", noun=noun),
  ]
  positives = [
    *_fill("The {aspect} was not {adj} at all.", aspect=aspect, adj=NEGATABLE_NEGATIVE),
    *_fill("It was not {adj} at all.", adj=NEGATABLE_NEGATIVE),
    *_fill("This {noun} is not {adj} at all.", noun=noun, adj=NEGATABLE_NEGATIVE),
    "I was not bored at all.",
    "I was not disappointed at all.",
    *_fill("I wasn't disappointed by the {aspect} at all.", aspect=aspect),
    *_fill("The {noun} was not a waste of time at all.", noun=noun),
    *_fill("I did not regret seeing this {noun} at all.", noun=noun),
  ]
  return _mft(rng, n, positives, negatives)


def _double_negation(rng: random.Random, n: int) -> list[_Triple]:
  noun = MOVIE_NOUNS
  aspect = ("plot", "acting", "script", "soundtrack", "ending", "dialogue", "story")
  this = ("it", "this movie", "this film", *(f"the {word}" for word in aspect))
  positives = [
    *_fill("I can't say I didn't enjoy {this}.", this=this),
    *_fill("I can't say I didn't like the {aspect}.", aspect=aspect),
    *_fill("Nothing about this {noun} disappointed me.", noun=noun),
    *_fill("Nothing about the {aspect} disappointed me.", aspect=aspect),
    *_fill("There was nothing I didn't like about the {aspect}.", aspect=aspect),
    *_fill("There was nothing I didn't like about this {noun}.", noun=noun),
    "There wasn't a single scene I didn't enjoy.",
    *_fill("There was not a single moment of this {noun} I didn't enjoy.", noun=noun),
    *_fill("It is impossible not to love this {noun}.", noun=noun),
    *_fill("It is hard not to enjoy this {noun}.", noun=noun),
    *_fill("The {noun} never failed to entertain me.", noun=noun),
    *_fill(
      "I never found the {aspect} anything but {adj}.",
      aspect=aspect,
      adj=("wonderful", "superb", "excellent"),
    ),
  ]
  negatives = [
    "There wasn't a single scene I didn't hate.",
    "There was not a single moment that didn't bore me.",
    *_fill("There was nothing about the {aspect} that didn't disappoint me.", aspect=aspect),
    *_fill("The {noun} never failed to bore me.", noun=noun),
    *_fill("It is hard not to be bored by this {noun}.", noun=noun),
    *_fill("It is impossible not to be disappointed by the {aspect}.", aspect=aspect),
    *_fill(
      "I never found the {aspect} anything but {adj}.",
      aspect=aspect,
      adj=("dull", "awful", "tedious"),
    ),
    "I can't say I wasn't bored.",
    *_fill("I can't say I wasn't disappointed by the {aspect}.", aspect=aspect),
  ]
  return _mft(rng, n, positives, negatives)


def _contrast(rng: random.Random, n: int) -> list[_Triple]:
  aspect = ("plot", "acting", "script", "soundtrack", "cinematography", "dialogue", "ending")
  whole = ("film", "movie", "film as a whole", "movie as a whole")
  noun = MOVIE_NOUNS
  positive_nouns = ("a delight", "a triumph", "a joy to watch")
  negative_nouns = ("a bore", "a mess", "a chore to sit through")

  def clauses(first: Sequence[str], second: Sequence[str], second_nouns: Sequence[str]):
    templates = (
      ("The {x} was {a}, but the {w} was {b}.", whole, second),
      ("The {x} was {a}, yet the {w} was {b}.", whole, second),
      ("The {x} is {a}, but overall the {w} is {b}.", noun, second),
      ("Although the {x} is {a}, the {w} is {b}.", whole, second),
      ("Even though the {x} was {a}, the {w} was {b}.", whole, second),
      ("Although the {x} is {a}, the {w} is {b}.", noun, second_nouns),
    )
    return [
      text for template, w, b in templates for text in _fill(template, x=aspect, a=first, w=w, b=b)
    ]

  positives = [
    *clauses(STRONG_NEGATIVE, STRONG_POSITIVE, positive_nouns),
    *_fill("I hated the {aspect}, but I loved the {noun}.", aspect=aspect, noun=noun),
    *_fill("Although I hated the {aspect}, I loved the {noun}.", aspect=aspect, noun=noun),
  ]
  negatives = [
    *clauses(STRONG_POSITIVE, STRONG_NEGATIVE, negative_nouns),
    *_fill("I loved the {aspect}, but I hated the {noun}.", aspect=aspect, noun=noun),
    *_fill("Although I loved the {aspect}, I hated the {noun}.", aspect=aspect, noun=noun),
  ]
  return _mft(rng, n, positives, negatives)


def _intensity(rng: random.Random, n: int) -> list[_Triple]:
  aspect, noun = ("movie", "film", "story", "acting", "script", "ending"), MOVIE_NOUNS

  def phrases(modifiers: Sequence[str], adjectives: Sequence[str]) -> list[str]:
    modified = _fill("{m} {adj}", m=modifiers, adj=adjectives)
    # "A rather dull film", but never "A a bit dull film".
    single = [phrase for phrase in modified if phrase.count(" ") == 1]
    return [
      *_fill("The {aspect} was {phrase}.", aspect=aspect, phrase=modified),
      *_fill("It was {phrase}.", phrase=modified),
      *_fill("This {noun} is {phrase}.", noun=noun, phrase=modified),
      *_fill("I found the {aspect} {phrase}.", aspect=aspect, phrase=modified),
      *(f"{_a(phrase).capitalize()} {word}." for phrase in single for word in noun),
    ]

  positives = [
    *phrases(INTENSIFIERS, GRADABLE_POSITIVE),
    *phrases(EXTREME_INTENSIFIERS, EXTREME_POSITIVE),
    *phrases(POSITIVE_DOWNTONERS, GRADABLE_POSITIVE),
  ]
  negatives = [
    *phrases(INTENSIFIERS, GRADABLE_NEGATIVE),
    *phrases(EXTREME_INTENSIFIERS, EXTREME_NEGATIVE),
    *phrases(NEGATIVE_DOWNTONERS, ("boring", "dull", "disappointing", "tedious")),
  ]
  return _mft(rng, n, positives, negatives)


def _short_review(rng: random.Random, n: int) -> list[_Triple]:
  return _mft(rng, n, SHORT_POSITIVE, SHORT_NEGATIVE)


# --- INV ------------------------------------------------------------------------------

NAME_TEMPLATES_POSITIVE = (
  "{x} gives a wonderful performance, and the story kept me hooked until the end.",
  "I loved this film. {x} is brilliant in the lead role.",
  "{x} directed this with real care. It is a beautiful, moving film.",
  "The script is sharp and funny, and {x} has never been better.",
  "What a delight. {x} and the rest of the cast are superb.",
  "{x} is the heart of this film, warm and funny in every scene. A real gem.",
)
NAME_TEMPLATES_NEGATIVE = (
  "{x} gives a terrible performance, and the plot makes no sense.",
  "I hated this film. {x} looks bored in every scene.",
  "{x} directed this mess. It is dull, slow and far too long.",
  "The dialogue is awful, and {x} has never been worse.",
  "What a waste of time. {x} deserves a much better script.",
  "{x} is miscast in the lead role, and the film is a chore to sit through.",
)
TITLE_TEMPLATES_POSITIVE = (
  "{x} is one of the best films I have seen this year. The acting is superb.",
  "I loved {x}. It is funny, warm and beautifully shot.",
  "{x} is a wonderful film with a story that stays with you.",
  "If you get the chance, watch {x}. It is a real gem.",
  "{x} was a delight from start to finish.",
  "I went into {x} with low hopes and came out thrilled. A wonderful film.",
)
TITLE_TEMPLATES_NEGATIVE = (
  "{x} is one of the worst films I have seen this year. The acting is wooden.",
  "I hated {x}. It is slow, dull and badly written.",
  "{x} is a boring film with a story that goes nowhere.",
  "Do not waste your time on {x}. It is a real mess.",
  "{x} was a chore from start to finish.",
  "I went into {x} with high hopes and came out bored. A dreadful film.",
)
TIMES = tuple(str(i) for i in range(2, 13))
YEARS = tuple(str(year) for year in range(1968, 2023))
MINUTES = tuple(str(minutes) for minutes in range(85, 185, 5))
NUMBER_TEMPLATES_POSITIVE = (
  ("I have seen it {x} times and I love it more every time.", TIMES),
  ("Even after {x} viewings, the ending still moves me. A beautiful film.", TIMES),
  ("Released in {x}, it is still one of the most beautiful films ever made.", YEARS),
  ("I first watched this in {x} and it is still wonderful.", YEARS),
  ("At {x} minutes, it flies by. I enjoyed every moment.", MINUTES),
  ("The {x}-minute running time flies by. A superb film.", MINUTES),
)
NUMBER_TEMPLATES_NEGATIVE = (
  ("I gave it {x} chances and hated it every time.", TIMES),
  ("I have seen {x} films by this director and this is by far the worst.", TIMES),
  ("Released in {x}, it has aged terribly. The effects and the acting are awful.", YEARS),
  ("I first watched this in {x} and it is still as dull as I remembered.", YEARS),
  ("At {x} minutes, it drags terribly. I was bored the whole time.", MINUTES),
  ("The {x}-minute running time feels endless. A tedious film.", MINUTES),
)


def _swap(
  rng: random.Random, n: int, templates: Sequence[tuple[str, Sequence[str]]]
) -> list[_Triple]:
  """INV triples: a template filled with one value and with another value of its lexicon."""
  pairs = [(template, value) for template, values in templates for value in values]
  picked = rng.sample(pairs, min(n, len(pairs)))
  triples = []
  for template, value in picked:
    values = next(values for t, values in templates if t == template)
    other = rng.choice([v for v in values if v != value])
    triples.append((template.format(x=value), None, template.format(x=other)))
  return triples


def _inv_swap(
  rng: random.Random,
  n: int,
  positive: Sequence[tuple[str, Sequence[str]]],
  negative: Sequence[tuple[str, Sequence[str]]],
) -> list[_Triple]:
  triples = _swap(rng, n // 2, positive) + _swap(rng, n - n // 2, negative)
  rng.shuffle(triples)
  return triples


def _inv_names(rng: random.Random, n: int) -> list[_Triple]:
  return _inv_swap(
    rng,
    n,
    [(t, NAMES) for t in NAME_TEMPLATES_POSITIVE],
    [(t, NAMES) for t in NAME_TEMPLATES_NEGATIVE],
  )


def _inv_titles(rng: random.Random, n: int) -> list[_Triple]:
  return _inv_swap(
    rng,
    n,
    [(t, TITLES) for t in TITLE_TEMPLATES_POSITIVE],
    [(t, TITLES) for t in TITLE_TEMPLATES_NEGATIVE],
  )


def _inv_numbers(rng: random.Random, n: int) -> list[_Triple]:
  return _inv_swap(rng, n, NUMBER_TEMPLATES_POSITIVE, NUMBER_TEMPLATES_NEGATIVE)


REVIEW_OPENERS_POSITIVE = (
  "I loved this film.",
  "What a wonderful movie.",
  "This film is a real treat.",
  "A beautiful, moving film.",
  "I really enjoyed this movie.",
)
REVIEW_OPENERS_NEGATIVE = (
  "I hated this film.",
  "What a dreadful movie.",
  "This film is a real chore.",
  "A tedious, lifeless film.",
  "I regret watching this movie.",
)
NEUTRAL_WHEN = (
  "last night",
  "on a Sunday afternoon",
  "with my family",
  "at a festival",
  "on a long flight",
)
NEUTRAL_FACTS = (
  "It follows a family moving to a small town.",
  "It is based on a novel.",
  "It runs for about two hours.",
  "It was filmed in Scotland.",
  "The story is set in the 1970s.",
)


def _reviews(openers: Sequence[str], adjectives: Sequence[str]) -> list[str]:
  """Two-sentence reviews: an opener, then two aspects described with two adjectives."""
  return [
    f"{opener} The {a1} is {adj1} and the {a2} is {adj2}."
    for opener in openers
    for a1, a2 in itertools.permutations(ASPECTS, 2)
    for adj1, adj2 in itertools.permutations(adjectives, 2)
  ]


def _polar_reviews(rng: random.Random, n: int) -> list[str]:
  """``n`` distinct reviews, half positive and half negative."""
  return _balanced(
    rng,
    n,
    _reviews(REVIEW_OPENERS_POSITIVE, STRONG_POSITIVE),
    _reviews(REVIEW_OPENERS_NEGATIVE, STRONG_NEGATIVE),
  )


def _title_case(text: str) -> str:
  """Each space-separated word with its first character upper-cased ("I Loved This")."""
  return " ".join(word[:1].upper() + word[1:] for word in text.split(" "))


CASINGS = types.MappingProxyType({"upper": str.upper, "lower": str.lower, "title": _title_case})


def _inv_casing(rng: random.Random, n: int) -> list[_Triple]:
  triples = []
  for text in _polar_reviews(rng, n):
    casing = CASINGS[rng.choice(sorted(CASINGS))]
    perturbed = casing(text)
    if perturbed == text:  # never for these reviews: they start upper, go on lower
      perturbed = text.upper()
    triples.append((text, None, perturbed))
  return triples


def _inv_punctuation(rng: random.Random, n: int) -> list[_Triple]:
  triples: list[_Triple] = []
  for text in _polar_reviews(rng, n):
    bare = text.rstrip(".")
    operation = rng.choice(("remove", "exclaim", "double_exclaim", "add"))
    if operation == "remove":
      triples.append((text, None, bare))
    elif operation == "exclaim":
      triples.append((text, None, bare + "!"))
    elif operation == "double_exclaim":
      triples.append((text, None, bare + "!!"))
    else:
      triples.append((bare, None, text))
  return triples


def typo(text: str, rng: random.Random) -> str:
  """Swaps two adjacent, different characters of one neutral word of ``text``.

  The word is drawn from the lower-case words of ``text`` in ``NEUTRAL_WORDS`` (never a
  sentiment word), and the position within it from those whose two characters differ.

  Args:
    text: the review.
    rng: the source of the choices.

  Returns:
    ``text`` with one word misspelt ("film" -> "flim").

  Raises:
    ValueError: if ``text`` has no word of ``NEUTRAL_WORDS``.
  """
  words = [m for m in re.finditer(r"[a-z]+", text) if m.group() in NEUTRAL_WORDS]
  if not words:
    raise ValueError(f"no neutral word to misspell in {text!r}")
  word = rng.choice(words)
  positions = [
    word.start() + i for i in range(len(word.group()) - 1) if word.group()[i] != word.group()[i + 1]
  ]
  i = rng.choice(positions)
  return text[:i] + text[i + 1] + text[i] + text[i + 2 :]


def _inv_typo(rng: random.Random, n: int) -> list[_Triple]:
  return [(text, None, typo(text, rng)) for text in _polar_reviews(rng, n)]


# --- DIR ------------------------------------------------------------------------------


def _dir_originals(rng: random.Random, n: int) -> list[str]:
  """A third positive, a third negative and a third neutral (descriptive) reviews."""
  neutral = [
    f"I watched this {noun} {when}. {fact}"
    for noun in MOVIE_NOUNS
    for when in NEUTRAL_WHEN
    for fact in NEUTRAL_FACTS
  ]
  return _balanced(
    rng,
    n,
    _reviews(REVIEW_OPENERS_POSITIVE, STRONG_POSITIVE),
    _reviews(REVIEW_OPENERS_NEGATIVE, STRONG_NEGATIVE),
    neutral,
  )


def _dir_add(rng: random.Random, n: int, additions: Sequence[str], direction: int) -> list[_Triple]:
  return [(text, direction, f"{text} {rng.choice(additions)}") for text in _dir_originals(rng, n)]


def _dir_add_positive(rng: random.Random, n: int) -> list[_Triple]:
  return _dir_add(rng, n, POSITIVE_ADDITIONS, 1)


def _dir_add_negative(rng: random.Random, n: int) -> list[_Triple]:
  return _dir_add(rng, n, NEGATIVE_ADDITIONS, 0)


_BUILDERS: types.MappingProxyType[str, _Builder] = types.MappingProxyType(
  {
    "negated_positive": _negated_positive,
    "negated_negative": _negated_negative,
    "not_at_all": _not_at_all,
    "double_negation": _double_negation,
    "contrast": _contrast,
    "intensity": _intensity,
    "short_review": _short_review,
    "inv_names": _inv_names,
    "inv_titles": _inv_titles,
    "inv_numbers": _inv_numbers,
    "inv_casing": _inv_casing,
    "inv_punctuation": _inv_punctuation,
    "inv_typo": _inv_typo,
    "dir_add_positive": _dir_add_positive,
    "dir_add_negative": _dir_add_negative,
  }
)


def build_suite(seed: int = 0) -> tuple[Case, ...]:
  """Generates the behavioural test cases of every capability.

  Each capability draws its cases with its own ``random.Random`` seeded from ``seed`` and
  its name, so the suite depends on nothing but ``seed`` (not on the process, not on the
  other capabilities), and texts do not repeat within a capability.

  Args:
    seed: any int; the same seed gives the same cases, another seed another sample.

  Returns:
    The cases, grouped by capability in the order of ``CAPABILITIES``: about
    ``CASES_PER_CAPABILITY`` each.
  """
  cases = []
  for capability in CAPABILITIES:
    rng = random.Random(f"{seed}/{capability.name}")
    triples = _BUILDERS[capability.name](rng, CASES_PER_CAPABILITY)
    cases += [
      Case(capability.name, capability.test_type, text, expected, perturbed)
      for text, expected, perturbed in triples
    ]
  return tuple(cases)
