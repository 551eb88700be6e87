"""The paper's three analyses at their real sizes, for a few orderings: coalitions/s, peak memory (host and GPU),
and the projected hours of the paper's full run (1000 orderings each).

    python benchmarks/paper_scale.py                    # on a GPU: the real sizes (Mixtral-shaped, 4-bit)
    python benchmarks/paper_scale.py --scale cpu        # reduced sizes, under 10 minutes on 2 CPU cores
    python benchmarks/paper_scale.py --scale tiny       # seconds (the tests run this)

| analysis | players | value | the paper's full run |
| MLP grid | hidden units of 1200 MLPs (N = 5..200) | per-digit accuracy on 10,000 digits | 1000 orderings per model |
| Mixtral | 256 experts (32 layers x 8) | 9 task scores, batched greedy generation | 1000 orderings |
| DCGAN | 1987 filters of the 128 x 128 generator | 32 images (32, 3, 128, 128) | 1000 orderings |

Weights are random: the cost of a coalition does not depend on them. The Mixtral-shaped model is built layer
by layer straight into bitsandbytes 4-bit layers (NF4, float16 compute), the paper's setup, so it never needs
the 94 GB of float16 weights; at --scale cpu and tiny it keeps Mixtral's structure with smaller widths and
fewer layers. The MLP grid's projection sums the chain cost over every model size of the grid. Each line says
what ran where; the last line is the projected Mixtral hours.
"""
import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import Budget, Method, shapley_modes  # noqa: E402
from common.device import pick_device  # noqa: E402

PAPER_ORDERINGS = 1000
SCALES = {  # what each scale runs: MLP (hidden, test images), DCGAN (config, images), Mixtral config overrides
    "full": dict(mlp=(200, 10000), dcgan=("celeba128", 32), mixtral={}, items=None, orderings=2),
    "cpu": dict(mlp=(200, 10000), dcgan=("celeba128", 2), items=2, orderings=1,
                mixtral=dict(hidden_size=512, intermediate_size=1792, num_hidden_layers=4, num_attention_heads=8,
                             num_key_value_heads=2)),
    "tiny": dict(mlp=(20, 500), dcgan=("tiny32", 2), items=1, orderings=1,
                 mixtral=dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                              num_key_value_heads=2)),
}
MIXTRAL_SHAPE = dict(vocab_size=32000, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                     num_attention_heads=32, num_key_value_heads=8, num_local_experts=8, num_experts_per_tok=2,
                     max_position_embeddings=4096, sliding_window=None)


def peak_host_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20


def peak_gpu_gib(device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2 ** 30 if device.type == "cuda" else None


def report(name, device, coalitions, seconds, total, extra=""):
    rate = coalitions / seconds
    line = dict(analysis=name, device=str(device), coalitions=coalitions, seconds=round(seconds, 2),
                coalitions_per_s=round(rate, 2), projected_hours=round(total / rate / 3600, 2),
                peak_host_gib=round(peak_host_gib(), 2), peak_gpu_gib=peak_gpu_gib(device))
    print(json.dumps(line) + (f"  # {extra}" if extra else ""), flush=True)
    return line


# ---------------------------------------------------------------- MLP grid
def mlp_grid(scale, device):
    from MLP.game import MLPGame
    from MLP.model import MLP
    n_hidden, n_images = SCALES[scale]["mlp"]
    torch.manual_seed(0)
    model = MLP(n_hidden).eval()
    x = torch.rand(n_images, 784)
    y = torch.arange(n_images) % 10
    game = MLPGame(model, x, y)
    orderings = 20
    started = time.perf_counter()
    result = shapley_modes(game, n_hidden, Budget(orderings=orderings), seed=0,
                           method=Method(estimator="chain", sampler="iid"),
                           progress=False)
    seconds = time.perf_counter() - started
    # the grid: N = 5, 10, ..., 200 x 3 regularisations x 10 trials, 1000 orderings of N coalitions each; a chain
    # step costs about the same at every N (one rank-1 update of the logits), so the rate carries over
    total = 30 * PAPER_ORDERINGS * sum(range(5, 201, 5))
    return report("mlp_grid", torch.device("cpu"), result.evaluations, seconds, total,
                  f"N={n_hidden}, {n_images} test images; the fast game runs on the CPU")


# ---------------------------------------------------------------- DCGAN
def dcgan(scale, device):
    from DCGAN.compute_msa import generator_units, images_game
    from DCGAN.model import Generator, fixed_noise, init_weights, make_config
    config, n_images = SCALES[scale]["dcgan"]
    torch.manual_seed(0)
    g = Generator(make_config(config)).to(device)
    g.apply(init_weights)
    g.eval()
    noise = fixed_noise(n_images).to(device)
    units = generator_units(g, noise)
    game = images_game(g, units, noise, batch_size=32 if device.type == "cuda" else 8)
    n = len(units)
    calls = max(1, 256 // game.batch_size) if scale != "tiny" else 2
    coalitions = np.ones((game.batch_size, n), bool)
    rng = np.random.default_rng(0)
    started = time.perf_counter()
    for _ in range(calls):  # chain-like coalitions; the cost per coalition does not depend on which
        coalitions &= rng.random(coalitions.shape) > 0.01
        game(coalitions)
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    value_bytes = n_images * 3 * g.cfg["image_size"] ** 2 * 4
    return report("dcgan", device, calls * game.batch_size, seconds, PAPER_ORDERINGS * n,
                  f"{config}: {n} filters, {n_images} images; float32 running mean + M2 of the full run: "
                  f"{2 * n * value_bytes * 32 / n_images / 2 ** 30:.1f} GiB (host)")


# ---------------------------------------------------------------- Mixtral
def random_4bit_mixtral(overrides, device):
    """A MixtralForCausalLM with random weights, built straight into bitsandbytes NF4 layers (float16 compute):
    every Linear but the LM head becomes Linear4bit, quantised one layer at a time."""
    import bitsandbytes as bnb
    from accelerate import init_empty_weights
    from bitsandbytes.functional import has_avx512bf16
    from transformers import MixtralConfig, MixtralForCausalLM

    from LLM.load import packs_on_avx512_bf16
    cpu_packed = device.type == "cpu" and has_avx512bf16()  # that kernel rejects some shapes: keep those 16-bit

    config = MixtralConfig(**dict(MIXTRAL_SHAPE, **overrides))
    with init_empty_weights():
        model = MixtralForCausalLM(config)
    generator = torch.Generator(device="cpu").manual_seed(0)
    for name, module in list(model.named_modules()):
        for child_name, child in list(module.named_children()):
            full = f"{name}.{child_name}" if name else child_name
            if isinstance(child, torch.nn.Linear) and full != "lm_head" and \
                    not (cpu_packed and not packs_on_avx512_bf16(child)):
                layer = bnb.nn.Linear4bit(child.in_features, child.out_features, bias=False,
                                          compute_dtype=torch.float16, quant_type="nf4")
                weight = torch.randn(child.out_features, child.in_features, generator=generator) * 0.02
                layer.weight = bnb.nn.Params4bit(weight.half(), requires_grad=False, quant_type="nf4").to(device)
                setattr(module, child_name, layer)
    model.to_empty(device=device)  # embeddings, norms, the LM head: fill them below
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dtype != torch.uint8:
                p.copy_(torch.randn(p.shape, generator=generator).mul_(0.02).to(p.dtype) if p.ndim > 1 else
                        torch.ones(p.shape))
        for module in model.modules():  # rotary embeddings' inverse frequencies are buffers
            if hasattr(module, "inv_freq") and hasattr(module, "rope_init_fn"):
                inv_freq, module.attention_scaling = module.rope_init_fn(module.config, device)
                module.inv_freq = inv_freq
                module.original_inv_freq = inv_freq
    return model.half().eval() if device.type == "cuda" else model.eval()


def mixtral(scale, device):
    from LLM import tasks as T
    from LLM.generate import ExpertGame
    from LLM.train_tiny_moe import build_tokenizer

    tokenizer = build_tokenizer()  # a stand-in tokenizer: prompt lengths are what matters for the cost
    model = random_4bit_mixtral(dict(SCALES[scale]["mixtral"], vocab_size=len(tokenizer),
                                     pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                                     eos_token_id=tokenizer.eos_token_id), device)
    model.generation_config.eos_token_id = None  # random weights: never stop early, every answer its full length
    items = SCALES[scale]["items"]
    tasks = [T.Task(t.name, t.items[:items] if items else t.items, t.max_new_tokens) for t in T.make_tasks(T.PAPER)]
    per_call = 8 if device.type == "cuda" else 1
    game = ExpertGame(model, tokenizer, tasks, coalitions_per_call=per_call)
    n = len(game.players)
    rng = np.random.default_rng(0)
    coalitions = rng.random((per_call * (2 if scale != "tiny" else 1), n)) > 0.1
    started = time.perf_counter()
    game(coalitions)
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    layers, width = model.config.num_hidden_layers, model.config.hidden_size
    return report("mixtral", device, len(coalitions), seconds, PAPER_ORDERINGS * 256,
                  f"{layers} layers x 8 experts, hidden {width}, 4-bit; {sum(len(t.items) for t in tasks)} prompts "
                  f"per coalition, {per_call} coalitions per generate call"
                  + ("" if scale == "full" else "; reduced widths: the hours are for this size, not Mixtral's"))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scale", choices=tuple(SCALES), default=None,
                   help="full (the default with a GPU), cpu (the default without), tiny (for tests)")
    p.add_argument("--only", nargs="+", choices=("mlp", "dcgan", "mixtral"), default=("mlp", "dcgan", "mixtral"))
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args(argv)
    device = pick_device(args.device)
    scale = args.scale or ("full" if device.type == "cuda" else "cpu")
    if args.threads:
        torch.set_num_threads(args.threads)
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else "none"
    print(f"device {device} (GPU: {gpu}; {torch.get_num_threads()} CPU threads); scale {scale}")
    lines = {}
    for name, run in (("mlp", mlp_grid), ("dcgan", dcgan), ("mixtral", mixtral)):
        if name in args.only:
            lines[name] = run(scale, device)
    if "mixtral" in lines:
        print(f"mixtral_projected_hours={lines['mixtral']['projected_hours']} (goal on one H100/H200: < 12; the "
              f"paper: 9 days on an A100){'' if scale == 'full' else ' at reduced size'}")
    return lines


if __name__ == "__main__":
    main()
