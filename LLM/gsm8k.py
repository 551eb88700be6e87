"""GSM8K, the data set of the expert-removal curves (paper Figure 2D): loading (the hub, or local jsonl files),
3-shot chat prompts, and scoring. The authors' protocol code is lost; we use the test split, the first 3
train-split problems as fixed exemplars (chat turns, calculator annotations <<...>> removed), greedy decoding, and
compare the last number of the answer with the number after '####'."""
import json
import re
from pathlib import Path

from .tasks import first_number, last_number, same_number

CALCULATOR = re.compile(r"<<[^>]*>>")  # the data set's calculator annotations, e.g. <<48/2=24>>


def reference(answer: str) -> str:
    """The number after '####' in a GSM8K reference answer."""
    if "####" not in answer:
        raise ValueError(f"GSM8K answer without '####': {answer[-80:]!r}")
    number = first_number(answer.split("####")[-1])
    if number is None:
        raise ValueError(f"no number after '####' in {answer[-80:]!r}")
    return number


def correct(generated: str, number: str) -> bool:
    """The paper's protocol as we reconstruct it: the last number of the model's answer vs the reference number."""
    return same_number(last_number(generated), number)


def messages(question: str, exemplars) -> tuple:
    """3-shot chat: each exemplar is a user question and an assistant answer ending in '#### N'."""
    turns = []
    for ex in exemplars:
        turns += [("user", ex["question"]), ("assistant", CALCULATOR.sub("", ex["answer"]))]
    return tuple(turns + [("user", question)])


def read_jsonl(path) -> list[dict]:
    rows = [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
    missing = [i for i, r in enumerate(rows) if not {"question", "answer"} <= set(r)]
    if missing:
        raise ValueError(f"{path}: rows {missing[:5]} lack 'question' or 'answer' (GSM8K jsonl format)")
    return rows


def load(data_file=None, train_file=None) -> tuple[list[dict], list[dict]]:
    """(test problems, 3 exemplars): from the hub (openai/gsm8k, main) or from local jsonl files."""
    if data_file is None:
        from datasets import load_dataset
        data = load_dataset("openai/gsm8k", "main")
        test, train = list(data["test"]), list(data["train"])
    else:
        if train_file is None:
            raise SystemExit("--data-file needs --train-file too: the 3 exemplars come from GSM8K's train split")
        test, train = read_jsonl(data_file), read_jsonl(train_file)
    if len(train) < 3:
        raise ValueError(f"need at least 3 train problems for the exemplars, got {len(train)}")
    return test, train[:3]


def items(data_file, train_file, limit):
    """(chat prompts, reference numbers) of the first `limit` test problems (all with limit None)."""
    test, exemplars = load(data_file, train_file)
    test = test[:limit] if limit else test
    prompts = [messages(row["question"], exemplars) for row in test]
    return prompts, [reference(row["answer"]) for row in test]
