"""The language-model game that MSA plays: a coalition of players (experts, heads, MLP blocks, sub-layers) ->
the mean score on each task, with the players outside the coalition ablated.

Many coalitions run in one forward pass or `generate` call: the rows of the batch are coalitions x prompts
(coalition-major), left-padded, and row r ablates the players of its own coalition. Two scores:
- generate (the paper's): greedy answers, scored per task (Levenshtein ratio, first word, first line). Rows
  that reach end-of-sequence early are padded by `generate` while the others go on; their answers are cut at
  the first end-of-sequence token.
- logprob: the mean log-probability of the reference answer's tokens under teacher forcing. One forward pass
  per coalition instead of generation, smooth in the ablation, so cheaper to estimate; the LM head runs only
  at the scored positions.
"""
import numpy as np
import torch
from tqdm.auto import tqdm

from .tasks import Task

SCORES = ("generate", "logprob")
END_OF_TURN = ("<|im_end|>", "<|eot_id|>", "<end_of_turn>")  # chat templates' end tokens besides EOS


def encode_chat(tokenizer, messages) -> list[int]:
    """Token ids of a chat ending with the user's turn, ready for the assistant's answer.

    The chat template writes BOS itself where the model has one (Mixtral's does), so the text is tokenized
    without special tokens: tokenizing it with them would add a second BOS.
    """
    chat = [{"role": role, "content": content} for role, content in messages]
    text = tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    bos = tokenizer.bos_token_id
    if bos is not None and ids[:2] == [bos, bos]:
        raise ValueError("the prompt starts with two BOS tokens; the chat template should write exactly one")
    return ids


def answer_ids(tokenizer, messages, reference: str) -> list[int]:
    """The tokens of `reference` as the assistant's answer to the chat, tokenized in context (as the model
    would produce them), without the end-of-turn tokens that follow."""
    prompt = encode_chat(tokenizer, messages)
    chat = [{"role": r, "content": c} for r, c in messages] + [{"role": "assistant", "content": reference}]
    full = tokenizer(tokenizer.apply_chat_template(chat, tokenize=False), add_special_tokens=False)["input_ids"]
    if full[:len(prompt)] != prompt:
        raise ValueError("adding the answer changed how the prompt tokenizes: cannot score the answer in context")
    rest = full[len(prompt):]
    for k in range(1, len(rest) + 1):
        if reference.strip() in tokenizer.decode(rest[:k], skip_special_tokens=True):
            return rest[:k]
    raise ValueError(f"the answer {reference!r} is not in the rendered chat")


def left_pad(tokenizer, sequences):
    """(input_ids, attention_mask) as int64 tensors, every row right-aligned (left padding)."""
    # the ids are already made (one BOS, chat template): padding them is all that is left, so transformers' hint
    # to pad while encoding does not apply; mark it as shown
    getattr(tokenizer, "deprecation_warnings", {})["Asking-to-pad-a-fast-tokenizer"] = True
    batch = tokenizer.pad({"input_ids": list(sequences)}, padding=True, padding_side="left", return_tensors="pt")
    return batch["input_ids"].long(), batch["attention_mask"].long()


def eos_ids(model, tokenizer) -> list[int]:
    """Every token that ends an answer: the model's EOS ids, the tokenizer's, and the chat's end-of-turn token."""
    eos = model.generation_config.eos_token_id
    eos = [eos] if isinstance(eos, int) else list(eos or [])
    extra = [tokenizer.eos_token_id] + [tokenizer.convert_tokens_to_ids(t) for t in END_OF_TURN
                                        if t in tokenizer.get_vocab()]
    return eos + [t for t in extra if t is not None and t not in eos]


@torch.inference_mode()
def generate_tokens(model, tokenizer, input_ids, attention_mask, ablated, max_new_tokens: int) -> list[list[int]]:
    """Greedy new tokens of every row, cut before the first end-of-sequence, inside the `ablated` context."""
    device = next(model.parameters()).device
    eos = eos_ids(model, tokenizer)
    with ablated:
        out = model.generate(input_ids=input_ids.to(device), attention_mask=attention_mask.to(device),
                             max_new_tokens=max_new_tokens, do_sample=False, temperature=None, top_p=None,
                             top_k=None, eos_token_id=eos, pad_token_id=tokenizer.pad_token_id)
    rows = []
    for row in out[:, input_ids.shape[1]:].tolist():
        stop = next((i for i, t in enumerate(row) if t in eos), len(row))  # rows that finished early: pads follow
        rows.append(row[:stop])
    return rows


def generate_answers(model, tokenizer, input_ids, attention_mask, coalitions, max_new_tokens: int, ablate,
                     rows_per_call: int = 256, progress: bool = False, desc: str = "generate") -> list[list[str]]:
    """answers[c][j]: greedy answer to prompt j (a row of the left-padded input_ids) with coalition c.

    The C x P (coalition, prompt) rows run coalition-major, `rows_per_call` rows per `generate` call;
    `ablate(keep)` gives the context that ablates keep[r]'s missing players in row r."""
    coalitions = np.asarray(coalitions, dtype=bool)
    n_prompts = len(input_ids)
    total = len(coalitions) * n_prompts
    flat = []
    for start in tqdm(range(0, total, rows_per_call), disable=not progress, desc=desc, leave=False):
        rows = np.arange(start, min(start + rows_per_call, total))
        c, j = np.divmod(rows, n_prompts)
        ids, mask = input_ids[j], attention_mask[j]
        first = int(mask.any(0).long().argmax())  # drop columns that are padding in every row of this call
        tokens = generate_tokens(model, tokenizer, ids[:, first:], mask[:, first:], ablate(coalitions[c]),
                                 max_new_tokens)
        flat += [tokenizer.decode(row, skip_special_tokens=True).strip() for row in tokens]
    return [flat[c * n_prompts:(c + 1) * n_prompts] for c in range(len(coalitions))]


@torch.inference_mode()
def answer_logprobs(model, input_ids, attention_mask, scored, ablated) -> torch.Tensor:
    """Mean log-probability of each row's answer tokens. scored: (rows, T) bool, True where the token is part of
    the answer; the LM head runs only on the positions that predict those tokens."""
    device = next(model.parameters()).device
    ids, mask = input_ids.to(device), attention_mask.to(device)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)  # left padding: real tokens start at position 0
    with ablated:
        hidden = model.get_decoder()(input_ids=ids, attention_mask=mask, position_ids=positions).last_hidden_state
    rows, cols = torch.nonzero(scored.to(device)[:, 1:], as_tuple=True)  # token t is predicted at t - 1
    logits = model.get_output_embeddings()(hidden[rows, cols]).float()
    token_logprob = logits.log_softmax(-1).gather(1, ids[rows, cols + 1][:, None])[:, 0]
    total = torch.zeros(len(ids), device=device).index_add_(0, rows, token_logprob)
    return (total / scored.sum(1).to(device).clamp(min=1)).cpu()


class LMGame:
    """The MSA game: coalition (C, n) bool, True = intact -> mean score per task, shape (C, n_tasks).

    Prompts with the same number of new tokens share `generate` calls; each call (or forward pass, for
    logprob) runs `coalitions_per_call` whole coalitions x those prompts. `batch_size` (read by the engine) =
    coalitions per game call.
    """

    def __init__(self, model, tokenizer, tasks: list[Task], players, score: str = "generate",
                 coalitions_per_call: int = 4, progress: bool = False, max_rows: int = 64):
        if score not in SCORES:
            raise ValueError(f"unknown score {score!r}; choose one of {SCORES}")
        self.model, self.tokenizer, self.tasks, self.score = model, tokenizer, list(tasks), score
        self.units = players
        self.players = list(players.labels)
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
        if score == "logprob":
            sequences, answers = [], []
            for _, item in self.items:
                prompt, answer = encode_chat(tokenizer, item.messages), answer_ids(tokenizer, item.messages, item.reference)
                sequences.append(prompt + answer)
                answers.append(len(answer))
            self.scored_ids, self.scored_mask = left_pad(tokenizer, sequences)
            width = self.scored_ids.shape[1]
            self.scored = torch.zeros_like(self.scored_mask, dtype=torch.bool)
            for r, k in enumerate(answers):
                self.scored[r, width - k:] = True
            self.by_length = np.argsort(self.scored_mask.sum(1).numpy(), kind="stable")
            self.max_rows = max_rows

    def _check(self, coalitions) -> np.ndarray:
        coalitions = np.asarray(coalitions, dtype=bool)
        if coalitions.ndim != 2 or coalitions.shape[1] != len(self.players):
            raise ValueError(f"coalitions must have shape (C, {len(self.players)}), got {coalitions.shape}")
        return coalitions

    def answers(self, coalitions) -> list[list[str]]:
        """answers[c][i]: coalition c's generated answer to self.items[i]."""
        coalitions = self._check(coalitions)
        out = [[] for _ in coalitions]
        for tokens, ids, mask, items in self.groups:
            group = generate_answers(self.model, self.tokenizer, ids, mask, coalitions, tokens, self.units.ablated,
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

    def logprobs(self, coalitions) -> np.ndarray:
        """(C, n_items) mean log-probability of each item's reference answer. Rows are coalitions x items,
        items sorted by length so that a forward pass pads little; at most `max_rows` rows per pass."""
        coalitions = self._check(coalitions)
        n_items = len(self.items)
        out = np.empty((len(coalitions), n_items))
        per_call = max(1, self.coalitions_per_call)
        for start in range(0, len(coalitions), per_call):
            block = coalitions[start:start + per_call]
            step = max(1, self.max_rows // len(block))
            for first_item in range(0, n_items, step):
                chunk = self.by_length[first_item:first_item + step]
                c, j = np.repeat(np.arange(len(block)), len(chunk)), np.tile(chunk, len(block))
                ids, mask, scored = self.scored_ids[j], self.scored_mask[j], self.scored[j]
                first = int(mask.any(0).long().argmax())  # drop columns that are padding in every row
                values = answer_logprobs(self.model, ids[:, first:], mask[:, first:], scored[:, first:],
                                         self.units.ablated(block[c]))
                out[start + c, j] = values.numpy()
        return out

    def __call__(self, coalitions) -> np.ndarray:
        if self.score == "generate":
            return self.scores(self.answers(coalitions))
        per_item = self.logprobs(coalitions)
        task = np.array([k for k, _ in self.items])
        return np.stack([per_item[:, task == k].mean(1) for k in range(len(self.tasks))], 1)


def ExpertGame(model, tokenizer, tasks, exclusion: str = "paper", coalitions_per_call: int = 4,
               progress: bool = False, score: str = "generate") -> LMGame:
    """The paper's game: the experts of a mixture of experts, excluded from the routing (`exclusion`)."""
    from .units import model_players
    return LMGame(model, tokenizer, tasks, model_players(model, "experts", exclusion=exclusion), score,
                  coalitions_per_call, progress)
