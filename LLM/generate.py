"""Batched greedy generation under expert exclusion, and the expert game that MSA plays.

Many coalitions run in one `generate` call: the rows of the batch are coalitions x prompts (coalition-major),
left-padded, and row r excludes the experts of its own coalition. Rows that reach end-of-sequence early are
padded by `generate` while the others go on; their answers are cut at the first end-of-sequence token.
"""
import numpy as np
import torch
from tqdm.auto import tqdm

from .moe import excluded_experts, expert_players
from .tasks import Task


def encode_chat(tokenizer, messages) -> list[int]:
    """Token ids of a chat ending with the user's turn, ready for the assistant's answer.

    The chat template writes BOS itself (Mixtral's does), so the text is tokenized without special tokens:
    tokenizing it with them would add a second BOS.
    """
    chat = [{"role": role, "content": content} for role, content in messages]
    text = tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    bos = tokenizer.bos_token_id
    if bos is not None and ids.count(bos) > 1:
        raise ValueError(f"the prompt holds {ids.count(bos)} BOS tokens; the chat template should write exactly one")
    return ids


def left_pad(tokenizer, sequences):
    """(input_ids, attention_mask) as int64 tensors, every row right-aligned (left padding)."""
    # the ids are already made (one BOS, chat template): padding them is all that is left, so transformers' hint
    # to pad while encoding does not apply; mark it as shown
    getattr(tokenizer, "deprecation_warnings", {})["Asking-to-pad-a-fast-tokenizer"] = True
    batch = tokenizer.pad({"input_ids": list(sequences)}, padding=True, padding_side="left", return_tensors="pt")
    return batch["input_ids"].long(), batch["attention_mask"].long()


def _eos_ids(model, tokenizer) -> list[int]:
    eos = model.generation_config.eos_token_id
    eos = [eos] if isinstance(eos, int) else list(eos or [])
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in eos:
        eos.append(tokenizer.eos_token_id)
    return eos


@torch.inference_mode()
def generate_tokens(model, tokenizer, input_ids, attention_mask, keep, max_new_tokens: int,
                    exclusion: str = "paper") -> list[list[int]]:
    """Greedy new tokens of every row, cut before the first end-of-sequence; keep[r] applies to row r."""
    device = next(model.parameters()).device
    eos = _eos_ids(model, tokenizer)
    with excluded_experts(model, keep, exclusion):
        out = model.generate(input_ids=input_ids.to(device), attention_mask=attention_mask.to(device),
                             max_new_tokens=max_new_tokens, do_sample=False, temperature=None, top_p=None,
                             top_k=None, eos_token_id=eos, pad_token_id=tokenizer.pad_token_id)
    rows = []
    for row in out[:, input_ids.shape[1]:].tolist():
        stop = next((i for i, t in enumerate(row) if t in eos), len(row))  # rows that finished early: pads follow
        rows.append(row[:stop])
    return rows


def generate_rows(model, tokenizer, input_ids, attention_mask, keep, max_new_tokens: int,
                  exclusion: str = "paper") -> list[str]:
    """Greedy answers (text) for every row; keep[r] (True = intact expert) applies to row r."""
    rows = generate_tokens(model, tokenizer, input_ids, attention_mask, keep, max_new_tokens, exclusion)
    return [tokenizer.decode(row, skip_special_tokens=True).strip() for row in rows]


def generate_answers(model, tokenizer, input_ids, attention_mask, coalitions, max_new_tokens: int,
                     exclusion: str = "paper", rows_per_call: int = 256, progress: bool = False,
                     desc: str = "generate") -> list[list[str]]:
    """answers[c][j]: greedy answer to prompt j (a row of the left-padded input_ids) with coalition c of experts.

    The C x P (coalition, prompt) rows are run coalition-major, `rows_per_call` rows per `generate` call.
    """
    coalitions = np.asarray(coalitions, dtype=bool)
    n_prompts = len(input_ids)
    total = len(coalitions) * n_prompts
    flat = []
    for start in tqdm(range(0, total, rows_per_call), disable=not progress, desc=desc, leave=False):
        rows = np.arange(start, min(start + rows_per_call, total))
        c, j = np.divmod(rows, n_prompts)
        ids, mask = input_ids[j], attention_mask[j]
        first = int(mask.any(0).long().argmax())  # drop columns that are padding in every row of this call
        flat += generate_rows(model, tokenizer, ids[:, first:], mask[:, first:], coalitions[c], max_new_tokens,
                              exclusion)
    return [flat[c * n_prompts:(c + 1) * n_prompts] for c in range(len(coalitions))]


class ExpertGame:
    """The MSA game: coalition of experts (True = intact) -> mean score per task, shape (C, n_tasks).

    Prompts with the same number of new tokens share `generate` calls; each call runs `coalitions_per_call`
    whole coalitions x all those prompts. `batch_size` (read by common.shapley_modes) = coalitions per game call.
    """

    def __init__(self, model, tokenizer, tasks: list[Task], exclusion: str = "paper", coalitions_per_call: int = 4,
                 progress: bool = False):
        self.model, self.tokenizer, self.tasks, self.exclusion = model, tokenizer, list(tasks), exclusion
        self.players = expert_players(model)
        self.coalitions_per_call = int(coalitions_per_call)
        self.batch_size = self.coalitions_per_call
        self.progress = progress
        self.groups = []  # (max_new_tokens, input_ids, attention_mask, [(task index, item)])
        for tokens in sorted({t.max_new_tokens for t in self.tasks}, reverse=True):
            items = [(k, item) for k, t in enumerate(self.tasks) if t.max_new_tokens == tokens for item in t.items]
            ids, mask = left_pad(tokenizer, [encode_chat(tokenizer, item.messages) for _, item in items])
            self.groups.append((tokens, ids, mask, items))
        self.items = [pair for *_, group in self.groups for pair in group]  # answers() order
        self.counts = np.bincount([k for k, _ in self.items], minlength=len(self.tasks))

    def answers(self, coalitions) -> list[list[str]]:
        """answers[c][i]: coalition c's answer to self.items[i]."""
        coalitions = np.asarray(coalitions, dtype=bool)
        if coalitions.ndim != 2 or coalitions.shape[1] != len(self.players):
            raise ValueError(f"coalitions must have shape (C, {len(self.players)}), got {coalitions.shape}")
        out = [[] for _ in coalitions]
        for tokens, ids, mask, items in self.groups:
            group = generate_answers(self.model, self.tokenizer, ids, mask, coalitions, tokens, self.exclusion,
                                     self.coalitions_per_call * len(items), self.progress,
                                     desc=f"generate ({tokens} new tokens)")
            for c, answers in enumerate(group):
                out[c] += answers
        return out

    def scores(self, answers) -> np.ndarray:
        """(C, n_tasks) mean score per task from answers() output."""
        values = np.zeros((len(answers), len(self.tasks)))
        for c, row in enumerate(answers):
            for (k, item), answer in zip(self.items, row):
                values[c, k] += self.tasks[k].score(answer, item)
        return values / self.counts

    def __call__(self, coalitions) -> np.ndarray:
        return self.scores(self.answers(coalitions))
