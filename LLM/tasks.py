"""The nine tasks of the Mixtral-experts experiment (paper section 2.2): prompts, fixed items, parsing, scoring.

The value of a coalition of experts is the 9-vector
    [addition, subtraction, multiplication, english, german, french, spanish, italian, capitals].
Arithmetic is scored by the Levenshtein ratio between the first number of the answer and the true
result (partial credit for partly right digits, 0 when there is no number); language identification by
whether the answer's first word names the language in that language; capitals by whether the first line
of the answer contains the capital. Every sampled item comes from a fixed seed.

`Sizes` scales the tasks: PAPER is the paper's setup (7-digit addition and subtraction, 4-digit
multiplication, 9/3/3 new tokens); TINY is the same formats scaled to the tiny stand-in model.
GSM8K, the removal curves' data set, is LLM/gsm8k.py.
"""
import csv
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

DATA = Path(__file__).parent / "data"
TASK_NAMES = ("addition", "subtraction", "multiplication", "english", "german", "french", "spanish", "italian",
              "capitals")
DOMAINS = {"arithmetic": ("addition", "subtraction", "multiplication"),
           "language": ("english", "german", "french", "spanish", "italian"),
           "knowledge": ("capitals",)}
OPERATORS = {"addition": "+", "subtraction": "-", "multiplication": "*"}

CALCULATOR = "You are a calculator that gives answer in numbers only"
# Per language: the instruction, the assistant's acknowledgement, the question, and the language's own name,
# all in that language (the paper gave each sentence's prompt in the sentence's own language).
LANGUAGE_PROMPTS = {
    "english": ("Answer in one word without explanation.", "Okay.",
                "What is the language of the following sentence: {}", "english"),
    "german": ("Antworte mit einem Wort ohne Erklärung.", "In Ordnung.",
               "Was ist die Sprache des folgenden Satzes: {}", "deutsch"),
    "french": ("Réponds en un seul mot sans explication.", "D'accord.",
               "Quelle est la langue de la phrase suivante : {}", "français"),
    "spanish": ("Responde con una sola palabra sin explicación.", "De acuerdo.",
                "¿Cuál es el idioma de la siguiente frase? {}", "español"),
    "italian": ("Rispondi con una sola parola senza spiegazione.", "Va bene.",
                "Qual è la lingua della seguente frase: {}", "italiano"),
}
CAPITAL_INSTRUCTION = "Answer the following question without explanation. What is the capital of {}?"
CAPITAL_QUESTION = "What is the capital of {}?"
ONE_SHOT = ("Spain", "Madrid")


@dataclass(frozen=True)
class Sizes:
    """How big the tasks are: digits of the operands, items per arithmetic task, new tokens per task."""
    add_digits: int = 7
    sub_digits: int = 7
    mul_digits: int = 4
    mul_digits_b: int | None = None  # digits of the second factor; None: as many as the first
    n_arithmetic: int = 30
    arithmetic_tokens: int = 9
    language_tokens: int = 3
    capitals_tokens: int = 3


PAPER = Sizes()
# The tiny model reads digits one token each, like Mixtral, but cannot learn 7-digit arithmetic on a CPU in
# minutes: same formats, fewer digits (2-digit + and -, 2-digit x 1-digit *: multiplication stays the hardest,
# as for Mixtral); enough new tokens for the longest answer plus end-of-sequence.
TINY = Sizes(add_digits=2, sub_digits=2, mul_digits=2, mul_digits_b=1, arithmetic_tokens=5, language_tokens=3,
             capitals_tokens=4)
SIZES = {"paper": PAPER, "tiny": TINY}


@dataclass(frozen=True)
class Item:
    task: str
    messages: tuple   # ((role, content), ...), ending with the user's question
    target: str       # the true result, the language's own name, or the accepted capitals ("a|b")
    answer: str = ""  # the reference answer for log-probability scoring (default: the target)

    @property
    def reference(self) -> str:
        return self.answer or self.target


@dataclass(frozen=True)
class Task:
    name: str
    items: tuple
    max_new_tokens: int

    def score(self, answer: str, item: Item) -> float:
        return score(self.name, answer, item.target)


# ---------------------------------------------------------------- items
def digits_range(digits: int) -> tuple[int, int]:
    return 10 ** (digits - 1), 10 ** digits - 1


def arithmetic_pairs(task: str, digits: int, n: int, seed: int, exclude=frozenset(),
                     digits_b: int | None = None) -> list[tuple[int, int]]:
    """n distinct operand pairs (digits and digits_b digits, default both `digits`), from a seed per task."""
    (low_a, high_a), (low_b, high_b) = digits_range(digits), digits_range(digits_b or digits)
    if n + len(exclude) > (high_a - low_a + 1) * (high_b - low_b + 1):
        raise ValueError(f"cannot draw {n} distinct {task} pairs of {digits} and {digits_b or digits} digits")
    rng = np.random.default_rng([seed, TASK_NAMES.index(task)])
    pairs, seen = [], set(exclude)
    while len(pairs) < n:
        pair = (int(rng.integers(low_a, high_a + 1)), int(rng.integers(low_b, high_b + 1)))
        if pair not in seen:
            seen.add(pair)
            pairs.append(pair)
    return pairs


def arithmetic_item(task: str, a: int, b: int) -> Item:
    result = {"addition": a + b, "subtraction": a - b, "multiplication": a * b}[task]
    messages = (("user", CALCULATOR), ("assistant", "Okay"), ("user", f"{a} {OPERATORS[task]} {b}"))
    return Item(task, messages, str(result))


def language_item(language: str, sentence: str) -> Item:
    instruction, ack, question, name = LANGUAGE_PROMPTS[language]
    messages = (("user", instruction), ("assistant", ack), ("user", question.format(sentence)))
    return Item(language, messages, name, name.capitalize())


def capital_item(country: str, accepted: str, capital: str = "") -> Item:
    messages = (("user", CAPITAL_INSTRUCTION.format(ONE_SHOT[0])), ("assistant", ONE_SHOT[1]),
                ("user", CAPITAL_QUESTION.format(country)))
    return Item("capitals", messages, accepted, capital)


@lru_cache(maxsize=None)
def sentences(split: str = "test") -> dict[str, list[str]]:
    """The vendored sentences per language (LLM/data/sentences.tsv), in file order."""
    out = {language: [] for language in LANGUAGE_PROMPTS}
    with open(DATA / "sentences.tsv", encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE):
            if row["split"] == split:
                out[row["language"]].append(row["sentence"])
    if not any(out.values()):
        raise ValueError(f"no {split!r} sentences in {DATA / 'sentences.tsv'}")
    return out


@lru_cache(maxsize=None)
def capitals() -> list[tuple[str, str, str]]:
    """(country, capital, accepted spellings) for the 20 countries of LLM/data/capitals.csv."""
    with open(DATA / "capitals.csv", encoding="utf-8", newline="") as f:
        return [(r["country"], r["capital"], r["accepted"]) for r in csv.DictReader(f)]


def arithmetic_digits(sizes: Sizes) -> dict[str, tuple[int, int]]:
    """Digits of (first, second) operand per arithmetic task."""
    return {"addition": (sizes.add_digits, sizes.add_digits), "subtraction": (sizes.sub_digits, sizes.sub_digits),
            "multiplication": (sizes.mul_digits, sizes.mul_digits_b or sizes.mul_digits)}


def make_tasks(sizes: Sizes = PAPER, seed: int = 0) -> list[Task]:
    """The nine tasks in TASK_NAMES order, with their fixed items."""
    tasks = []
    for name, (digits, digits_b) in arithmetic_digits(sizes).items():
        pairs = arithmetic_pairs(name, digits, sizes.n_arithmetic, seed, digits_b=digits_b)
        items = tuple(arithmetic_item(name, a, b) for a, b in pairs)
        tasks.append(Task(name, items, sizes.arithmetic_tokens))
    test = sentences("test")
    for language in LANGUAGE_PROMPTS:
        tasks.append(Task(language, tuple(language_item(language, s) for s in test[language]), sizes.language_tokens))
    tasks.append(Task("capitals", tuple(capital_item(c, acc, capital) for c, capital, acc in capitals()),
                      sizes.capitals_tokens))
    return tasks


# ---------------------------------------------------------------- parsing and scoring
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


def _numbers(text: str) -> list[str]:
    """Numbers in the text with thousands separators removed; a '-' right before the digits is kept."""
    text = text.replace("\u2212", "-")  # the Unicode minus sign
    return [m.group().replace(",", "").rstrip(".") for m in _NUMBER.finditer(text)]


def first_number(text: str) -> str | None:
    found = _numbers(text)
    return found[0] if found else None


def last_number(text: str) -> str | None:
    found = _numbers(text)
    return found[-1] if found else None


def levenshtein_ratio(a: str, b: str) -> float:
    import Levenshtein  # python-Levenshtein; imported here so that the rest of this module needs no extra
    return float(Levenshtein.ratio(a, b))


def score_arithmetic(answer: str, target: str) -> float:
    number = first_number(answer)
    return 0.0 if number is None else levenshtein_ratio(number, target)


def _fold(text: str) -> str:
    return unicodedata.normalize("NFC", text).lower()


def score_language(answer: str, name: str) -> float:
    words = answer.split()
    return float(bool(words) and _fold(name) in _fold(words[0]))


def score_capital(answer: str, accepted: str) -> float:
    lines = answer.strip().splitlines()
    first = _fold(lines[0]) if lines else ""
    return float(any(_fold(c) in first for c in accepted.split("|")))


def score(task: str, answer: str, target: str) -> float:
    if task in OPERATORS:
        return score_arithmetic(answer, target)
    if task in LANGUAGE_PROMPTS:
        return score_language(answer, target)
    if task == "capitals":
        return score_capital(answer, target)
    raise ValueError(f"unknown task {task!r}; tasks are {TASK_NAMES}")


def chance_scores(tasks: list[Task]) -> np.ndarray:
    """What a model that ignores the question scores: for arithmetic, the mean ratio between each true result
    and the other items' true results (right length and sign, wrong digits); 1/5 for language (one of five
    names), 1/20 for capitals (one of twenty)."""
    out = []
    for task in tasks:
        if task.name in OPERATORS:
            targets = [i.target for i in task.items]
            out.append(np.nan if len(targets) < 2 else np.mean([levenshtein_ratio(a, b) for i, a in enumerate(targets)
                                for j, b in enumerate(targets) if i != j]))
        elif task.name in LANGUAGE_PROMPTS:
            out.append(1 / len(LANGUAGE_PROMPTS))
        else:
            out.append(1 / len(task.items))
    return np.array(out)


def same_number(a: str | None, b: str | None) -> bool:
    """Whether two parsed numbers are equal (False when either is missing)."""
    if a is None or b is None:
        return False
    try:
        return abs(float(a) - float(b)) < 1e-6
    except ValueError:
        return False
