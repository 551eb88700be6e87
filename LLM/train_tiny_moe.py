"""Train the tiny Mixtral-architecture stand-in model on the experiment's own task formats (CPU, minutes).

No registry ships a pretrained mixture-of-experts model, so the CPU default of the experiment is a small
MixtralForCausalLM (4 layers x 8 experts, top-2 routing, the real Hugging Face class) trained here on:
- arithmetic in the calculator chat format, with fewer digits (2-digit + and -, 2-digit x 1-digit *;
  tasks.TINY);
- language identification of real sentences, prompts in the sentence's own language (LLM/data/sentences.tsv,
  the `train` split: never the 75 test sentences);
- the capitals of the 20 countries, in the one-shot format (knowledge has to be memorised).
Loss is on the assistant's final answer only, plus Mixtral's router load-balancing loss so that every expert
gets work. The tokenizer is a small BPE (digits one token each, like Mixtral's) wrapped in
PreTrainedTokenizerFast with a Mistral-style chat template that writes BOS itself.

    python LLM/train_tiny_moe.py                 # ~9 minutes on 2 CPU cores (measured 8.6), writes LLM/runs/tiny_moe
    python LLM/train_tiny_moe.py --steps 50      # a quick smoke run
"""
import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from common.cli import non_negative_int, positive_float, positive_int
from LLM import tasks as T
from common.device import set_cpu_threads
from common.extras import require_extra

DEFAULT_OUT = Path(__file__).parent / "runs" / "tiny_moe"
HELD_OUT_SEED = 1  # arithmetic items of the removal curve; never trained on
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}"
    "{% else %}{{ message['content'] + eos_token }}{% endif %}{% endfor %}")


# ---------------------------------------------------------------- tokenizer
def corpus() -> list[str]:
    """Text the BPE vocabulary is learned from: every prompt and answer format, all sentences."""
    # fixed phrases repeated, so that they become whole-word tokens (shorter prompts, faster training)
    texts = [T.CALCULATOR, "Okay", T.CAPITAL_INSTRUCTION.format(T.ONE_SHOT[0]), T.ONE_SHOT[1]] * 50
    texts += [T.CAPITAL_QUESTION.format(c) + " " + capital for c, capital, _ in T.capitals()] * 20
    for language, (instruction, ack, question, name) in T.LANGUAGE_PROMPTS.items():
        texts += [instruction, ack, name.capitalize()] * 50
        texts += [question.format(s) for split in ("train", "test") for s in T.sentences(split)[language]]
    texts += [f"{a} {op} {b}" for a, b, op in zip(range(100, 999), range(999, 100, -1), "+-*" * 400)]
    return texts


def build_tokenizer(vocab_size: int = 2000):
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<unk>", "<s>", "</s>", "<pad>", "[INST]", "[/INST]"]
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.normalizer = normalizers.NFC()
    # digits one token each (as in Mixtral's tokenizer): arithmetic is learnable digit by digit
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Metaspace(), pre_tokenizers.Digits(individual_digits=True)])
    tok.decoder = decoders.Metaspace()
    tok.train_from_iterator(corpus(), trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials,
                                                          min_frequency=2, show_progress=False))
    # like Llama/Mistral tokenizers, plain encoding adds BOS: the chat template must then be tokenized without it
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B",
                                                       special_tokens=[("<s>", tok.token_to_id("<s>"))])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                                   pad_token="<pad>", additional_special_tokens=["[INST]", "[/INST]"],
                                   chat_template=CHAT_TEMPLATE, padding_side="left", model_max_length=512)


# ---------------------------------------------------------------- data
def training_items(n_arithmetic: int, seed: int, sizes=T.TINY) -> list[tuple[tuple, str]]:
    """(messages, answer) pairs: n_arithmetic sums/differences/products (none of the test or held-out ones),
    every training sentence, and the capitals."""
    rng = np.random.default_rng(seed)
    items = []
    for task, (d, d_b) in T.arithmetic_digits(sizes).items():
        banned = set(T.arithmetic_pairs(task, d, sizes.n_arithmetic, 0, digits_b=d_b))  # test items (seed 0)
        banned |= set(T.arithmetic_pairs(task, d, 100, HELD_OUT_SEED, digits_b=d_b))
        (low, high), (low_b, high_b) = T.digits_range(d), T.digits_range(d_b)
        count = 0
        while count < n_arithmetic // 3:
            a, b = int(rng.integers(low, high + 1)), int(rng.integers(low_b, high_b + 1))
            if (a, b) in banned:
                continue
            item = T.arithmetic_item(task, a, b)
            items.append((item.messages, item.target))
            count += 1
    for language, rows in T.sentences("train").items():
        name = T.LANGUAGE_PROMPTS[language][3]
        items += [(T.language_item(language, s).messages, name.capitalize()) for s in rows]
    for country, capital, accepted in T.capitals():
        items.append((T.capital_item(country, accepted).messages, capital))
    # Spain itself, one-shot with another country, so the example answer is knowledge too
    items.append(((("user", T.CAPITAL_INSTRUCTION.format("France")), ("assistant", "Paris"),
                   ("user", T.CAPITAL_QUESTION.format("Spain"))), "Madrid"))
    return items


def encode_example(tokenizer, messages, answer) -> tuple[list[int], list[int]]:
    """(input ids, labels): the full chat with the answer; labels only on the answer and its EOS."""
    from LLM.generate import encode_chat

    prompt = encode_chat(tokenizer, messages)
    chat = [{"role": r, "content": c} for r, c in messages] + [{"role": "assistant", "content": answer}]
    full = tokenizer(tokenizer.apply_chat_template(chat, tokenize=False), add_special_tokens=False)["input_ids"]
    if full[:len(prompt)] != prompt:
        raise RuntimeError("the answer changed how the prompt tokenizes; the loss mask would be wrong")
    return full, [-100] * len(prompt) + full[len(prompt):]


# ---------------------------------------------------------------- model
def build_model(tokenizer, layers: int, experts: int, hidden: int, ffn: int, seed: int):
    from transformers import MixtralConfig, MixtralForCausalLM

    torch.manual_seed(seed)
    config = MixtralConfig(vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=ffn,
                           num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                           num_local_experts=experts, num_experts_per_tok=2, max_position_embeddings=512,
                           rope_theta=10000.0, sliding_window=None, router_aux_loss_coef=0.02,
                           output_router_logits=False, tie_word_embeddings=False,
                           bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                           pad_token_id=tokenizer.pad_token_id)
    return MixtralForCausalLM(config)


def evaluate(model, tokenizer, progress=False) -> dict:
    """Per-task scores of the intact model on the TINY tasks, and what guessing would score."""
    from LLM.generate import ExpertGame

    tasks = T.make_tasks(T.TINY)
    game = ExpertGame(model, tokenizer, tasks, coalitions_per_call=1, progress=progress)
    intact = game(np.ones((1, len(game.players)), bool))[0]
    chance = T.chance_scores(tasks)
    return {t.name: dict(score=float(s), chance=float(c)) for t, s, c in zip(tasks, intact, chance)}


def train(out: Path = DEFAULT_OUT, steps: int = 1200, batch_size: int = 48, lr: float = 3e-3, seed: int = 0,
          layers: int = 4, experts: int = 8, hidden: int = 128, ffn: int = 256, progress: bool = True) -> dict:
    torch.manual_seed(seed)
    started = time.perf_counter()
    tokenizer = build_tokenizer()
    model = build_model(tokenizer, layers, experts, hidden, ffn, seed)
    n_params = sum(p.numel() for p in model.parameters())
    fit(model, tokenizer, steps=steps, batch_size=batch_size, lr=lr, seed=seed, progress=progress)
    train_seconds = time.perf_counter() - started
    scores = evaluate(model, tokenizer, progress)
    eval_seconds = time.perf_counter() - started - train_seconds
    info = dict(steps=steps, batch_size=batch_size, lr=lr, seed=seed, layers=layers, experts=experts, hidden=hidden,
                ffn=ffn, parameters=n_params, train_seconds=round(train_seconds, 1), eval_seconds=round(eval_seconds, 1),
                threads=torch.get_num_threads(), scores=scores)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    (out / "train_info.json").write_text(json.dumps(info, indent=2, ensure_ascii=False))
    return info


def fit(model, tokenizer, *, steps: int, batch_size: int = 48, lr: float = 3e-3, seed: int = 0, warmup: int = 100,
        progress: bool = False):
    """Train `model` in place on the tasks' training mix (a new model, or a pruned one fine-tuned: `steps` of
    AdamW with a cosine schedule after `warmup` steps); it is left in eval mode."""
    from transformers import DataCollatorForSeq2Seq, get_cosine_with_min_lr_schedule_with_warmup

    model.config.output_router_logits = True  # adds the load-balancing loss to the loss during training
    items = training_items(n_arithmetic=int(steps * batch_size * 0.8), seed=seed)
    examples = [encode_example(tokenizer, m, a) for m, a in tqdm(items, desc="tokenize", disable=not progress)]
    kinds = np.array([0 if m[0][1] == T.CALCULATOR else 2 if "capital" in m[-1][1] else 1 for m, _ in items])
    pools = [np.flatnonzero(kinds == k) for k in range(3)]
    weights = np.array([0.78, 0.14, 0.08])  # arithmetic, language, capitals: arithmetic is the hard one
    rng = np.random.default_rng(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.98), weight_decay=0.01)
    schedule = get_cosine_with_min_lr_schedule_with_warmup(optimizer, num_warmup_steps=min(warmup, steps // 10),
                                                           num_training_steps=steps, min_lr_rate=0.1)
    # right padding while training: positions then start at 0 in every row, as left padding + the attention
    # mask's cumulative sum gives them at generation
    tokenizer.padding_side = "right"
    collate = DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=-100, return_tensors="pt")
    model.train()
    bar = tqdm(range(steps), desc="train tiny MoE", disable=not progress)
    for step in bar:
        counts = rng.multinomial(batch_size, weights)
        chosen = np.concatenate([rng.choice(pool, size=c) for pool, c in zip(pools, counts)])
        inputs = collate([dict(input_ids=examples[i][0], labels=examples[i][1]) for i in chosen])
        loss = model(**inputs).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        if step % 20 == 0:
            bar.set_postfix(loss=f"{loss.item():.3f}")
    model.eval()
    model.config.output_router_logits = False
    tokenizer.padding_side = "left"  # batched generation continues every row from its last real token
    return model


def seed_folder(seed: int) -> Path:
    """Where the tiny model of training seed `seed` lives: DEFAULT_OUT for seed 0, tiny_moe_seedS beside it."""
    return DEFAULT_OUT if seed == 0 else DEFAULT_OUT.with_name(f"{DEFAULT_OUT.name}_seed{seed}")


def ensure_tiny_model(path: Path = DEFAULT_OUT, progress: bool = True, seed: int = 0) -> Path:
    """The tiny model's folder, training it first (with `seed`; 6-15 minutes on 2 CPU cores) if it is not there."""
    path = Path(path)
    if not (path / "config.json").exists():
        print(f"no tiny model in {path}: training it with seed {seed} (6-15 minutes on 2 CPU cores)", flush=True)
        info = train(path, seed=seed, progress=progress)
        print_scores(info)
    return path


def print_scores(info: dict) -> None:
    print(f"trained in {info['train_seconds']:.0f} s ({info['steps']} steps, {info['parameters']:,} parameters)")
    print(f"{'task':<16}{'score':>8}{'chance':>8}")
    for name, s in info["scores"].items():
        print(f"{name:<16}{s['score']:>8.3f}{s['chance']:>8.3f}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder for save_pretrained (default: %(default)s)")
    parser.add_argument("--steps", type=positive_int, default=1200, help="optimizer steps (default: %(default)s)")
    parser.add_argument("--batch-size", type=positive_int, default=48)
    parser.add_argument("--lr", type=positive_float, default=3e-3)
    parser.add_argument("--seed", type=non_negative_int, default=0)
    parser.add_argument("--layers", type=positive_int, default=4)
    parser.add_argument("--experts", type=positive_int, default=8)
    parser.add_argument("--hidden", type=positive_int, default=128)
    parser.add_argument("--ffn", type=positive_int, default=256, help="each expert's intermediate size")
    parser.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads (default: every core)")
    args = parser.parse_args(argv)
    require_extra("llm")
    set_cpu_threads(args.threads)
    info = train(args.out, args.steps, args.batch_size, args.lr, args.seed, args.layers, args.experts, args.hidden,
                 args.ffn)
    print_scores(info)
    print(f"saved to {args.out}")


if __name__ == "__main__":
    main()
