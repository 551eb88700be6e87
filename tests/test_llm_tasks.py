"""The nine tasks: items, parsing and scoring on hand-written answers, GSM8K extraction, one BOS per prompt."""
import numpy as np
import pytest

pytest.importorskip("Levenshtein", reason="the llm extra is not installed")

from LLM import tasks as T  # noqa: E402


def test_paper_tasks_have_the_papers_sizes_and_formats():
    tasks = T.make_tasks(T.PAPER)
    assert [t.name for t in tasks] == list(T.TASK_NAMES)
    assert [len(t.items) for t in tasks] == [30, 30, 30, 15, 15, 15, 15, 15, 20]
    assert [t.max_new_tokens for t in tasks] == [9, 9, 9, 3, 3, 3, 3, 3, 3]
    add, sub, mul = tasks[:3]
    for item in add.items + sub.items:
        a, op, b = item.messages[-1][1].split()
        assert 1_000_000 <= int(a) <= 9_999_999 and 1_000_000 <= int(b) <= 9_999_999
        assert int(item.target) == (int(a) + int(b) if op == "+" else int(a) - int(b))
    for item in mul.items:
        a, op, b = item.messages[-1][1].split()
        assert op == "*" and 1000 <= int(a) <= 9999 and int(item.target) == int(a) * int(b)
    assert add.items[0].messages[:2] == (("user", T.CALCULATOR), ("assistant", "Okay"))
    german = tasks[T.TASK_NAMES.index("german")].items[0]
    assert german.target == "deutsch" and german.messages[0][1].startswith("Antworte")
    assert german.messages[-1][1].startswith("Was ist die Sprache")
    capital = tasks[-1].items[0]
    assert capital.messages[1] == ("assistant", "Madrid") and "Spain" in capital.messages[0][1]


def test_items_are_fixed_by_the_seed():
    one, two, other = T.make_tasks(T.PAPER, seed=0), T.make_tasks(T.PAPER, seed=0), T.make_tasks(T.PAPER, seed=5)
    assert one[0].items == two[0].items
    assert one[0].items != other[0].items
    assert len({i.messages[-1][1] for i in one[0].items}) == 30  # distinct pairs


def test_sentences_are_vendored_and_disjoint():
    test, train = T.sentences("test"), T.sentences("train")
    assert all(len(v) == 15 for v in test.values()) and len(test) == 5
    for language in test:
        assert not set(test[language]) & set(train[language])
    assert len(T.capitals()) == 20 and all(c != "Spain" for c, _, _ in T.capitals())


@pytest.mark.parametrize("answer, target, expected", [
    ("3456789", "3456789", 1.0),
    ("The answer is 3,456,789.", "3456789", 1.0),            # commas are thousands separators
    ("-1234567", "-1234567", 1.0),                           # negatives keep their sign
    ("\u22121234567", "-1234567", 1.0),                       # the Unicode minus too
    ("1234567", "-1234567", 2 * 7 / 15),                     # a missing sign costs one character
    ("I cannot compute that", "3456789", 0.0),               # no number: zero
    ("", "3456789", 0.0),
    ("3456780 or 3456789", "3456789", 6 / 7),                # only the first number counts
    ("12", "1234", 2 * 2 / 6),                               # Levenshtein ratio: 2 * matches / total length
])
def test_arithmetic_scoring(answer, target, expected):
    assert T.score("addition", answer, target) == pytest.approx(expected)


@pytest.mark.parametrize("task, answer, expected", [
    ("french", "Français", 1.0),
    ("french", "FRANÇAIS.", 1.0),
    ("french", "Francais", 0.0),                               # the accent is part of the name
    ("french", "Fran\u0327cais", 0.0),
    ("french", "Franc\u0327ais", 1.0),                        # decomposed ç is the same letter
    ("spanish", "Español", 1.0),
    ("spanish", "Latín", 0.0),
    ("german", "Deutsch", 1.0),
    ("german", "German", 0.0),                                 # the language's own name is asked for
    ("german", "Die Sprache ist Deutsch", 0.0),                # only the first word counts
    ("italian", "italiano\nperché...", 1.0),
    ("english", "", 0.0),
])
def test_language_scoring(task, answer, expected):
    target = T.LANGUAGE_PROMPTS[task][3]
    assert T.score(task, answer, target) == expected


@pytest.mark.parametrize("answer, accepted, expected", [
    ("New Delhi", "new delhi|delhi", 1.0),
    ("New Del", "new delhi|delhi", 0.0),                       # cut off by the token limit
    ("Buenos Aires", "buenos aires", 1.0),
    ("buenos", "buenos aires", 0.0),
    ("Brasilia", "brasília|brasilia", 1.0),
    ("The capital is Paris", "paris", 1.0),
    ("I think\nParis", "paris", 0.0),                          # only the first line counts
    ("", "paris", 0.0),
])
def test_capital_scoring(answer, accepted, expected):
    assert T.score("capitals", answer, accepted) == expected


def test_unknown_task_fails():
    with pytest.raises(ValueError, match="unknown task"):
        T.score("poetry", "x", "y")


def test_chance_scores_are_below_a_perfect_model():
    tasks = T.make_tasks(T.PAPER)
    chance = T.chance_scores(tasks)
    assert chance.shape == (9,) and np.all(chance > 0) and np.all(chance < 0.7)
    assert chance[3] == pytest.approx(0.2) and chance[-1] == pytest.approx(0.05)


def test_gsm8k_answer_extraction():
    reference = "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nNatalia sold 48+24 = <<48+24=72>>72 clips.\n#### 72"
    from LLM import gsm8k
    number = gsm8k.reference(reference)
    assert number == "72"
    assert gsm8k.reference("... #### 1,080") == "1080"
    assert gsm8k.reference("... #### -3") == "-3"
    assert gsm8k.correct("She sold 24 in May, so 48 + 24 = 72 clips.", number)
    assert gsm8k.correct("48 + 24 = 72\n#### 72", number)
    assert gsm8k.correct("The total is $72.00.", number)
    assert not gsm8k.correct("72 clips, or 73 if we count the one she kept", number)  # the last number counts
    assert not gsm8k.correct("I do not know", number)
    assert gsm8k.correct("It costs $1,080.", gsm8k.reference("#### 1080"))
    with pytest.raises(ValueError, match="####"):
        gsm8k.reference("no marker here")


def test_gsm8k_prompt_is_three_shot_without_calculator_annotations():
    exemplars = [{"question": f"Q{i}?", "answer": f"2+2 = <<2+2=4>>4\n#### {i}"} for i in range(3)]
    from LLM import gsm8k
    messages = gsm8k.messages("How many?", exemplars)
    assert [r for r, _ in messages] == ["user", "assistant"] * 3 + ["user"]
    assert messages[1][1] == "2+2 = 4\n#### 0" and messages[-1] == ("user", "How many?")


def test_chat_template_yields_one_bos():
    pytest.importorskip("transformers")
    from LLM.generate import encode_chat
    from LLM.train_tiny_moe import build_tokenizer

    tokenizer = build_tokenizer()
    assert tokenizer("x")["input_ids"][0] == tokenizer.bos_token_id  # plain encoding adds BOS, like Mixtral's
    for task in T.make_tasks(T.TINY):
        ids = encode_chat(tokenizer, task.items[0].messages)
        assert ids.count(tokenizer.bos_token_id) == 1 and ids[0] == tokenizer.bos_token_id
    # what encode_chat avoids: tokenizing the template's text with special tokens doubles BOS
    chat = [{"role": r, "content": c} for r, c in T.make_tasks(T.TINY)[0].items[0].messages]
    text = tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
    assert tokenizer(text)["input_ids"][:2] == [tokenizer.bos_token_id] * 2
