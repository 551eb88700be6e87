"""DCGAN generator and discriminator, sized by output resolution and width.

Generator (the paper's 128 x 128 network, docs/paper_setup.md#dcgan):
    z (100) -> ConvT(100, 1024, k4, s1, p0) BN ReLU          4 x 4     blocks.0
            -> ConvT(1024, 512, k4, s2, p1) BN ReLU          8 x 8     blocks.1
            -> ... 512 -> 256 -> 128 -> 64                   16..64    blocks.2-4
            -> ConvT(64, 3, k4, s2, p1) Sigmoid              128 x 128 out
No biases anywhere. Players are (layer, channel) units, lesioned after the activation, so every
activation is its own named module: units read "blocks.2.act[17]" and "out.act[0]" (R, G, B).
"""
import torch
from torch import nn

NZ = 100  # noise length, as in the paper

# widths of the hidden blocks; the output layer adds 3 players (R, G, B)
CONFIGS = {
    "celeba128": dict(image_size=128, widths=(1024, 512, 256, 128, 64)),  # the paper: 1987 players
    "celeba64": dict(image_size=64, widths=(512, 256, 128, 64)),          # 963 players
    "tiny32": dict(image_size=32, widths=(64, 32, 16)),                   # CPU demo: 115 players
}


def make_config(name: str = "tiny32", **overrides) -> dict:
    if name not in CONFIGS:
        raise ValueError(f"unknown config {name!r}; choose one of {sorted(CONFIGS)}")
    cfg = dict(name=name, nz=NZ, channels=3, **CONFIGS[name])
    cfg.update(overrides)
    cfg["widths"] = tuple(int(w) for w in cfg["widths"])
    # each block doubles the side, starting at 4 x 4; the output layer doubles once more
    expected = 4 * 2 ** len(cfg["widths"])
    if cfg["image_size"] != expected:
        raise ValueError(f"{len(cfg['widths'])} hidden blocks give {expected} x {expected} images, "
                         f"not {cfg['image_size']}: image_size must be 4 * 2 ** len(widths)")
    return cfg


def n_players(cfg: dict) -> int:
    """Filters incl. the output channels, counted from the config (no forward pass needed)."""
    return sum(cfg["widths"]) + cfg["channels"]


class GenBlock(nn.Module):
    def __init__(self, c_in, c_out, first=False):
        super().__init__()
        self.conv = nn.ConvTranspose2d(c_in, c_out, 4, 1 if first else 2, 0 if first else 1, bias=False)
        self.bn = nn.BatchNorm2d(c_out)
        self.act = nn.ReLU()  # lesion site
        self.act.unit_axis = 1  # its units are channels (common.lesion.unit_axis)

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))


class OutBlock(nn.Module):
    def __init__(self, c_in, channels):
        super().__init__()
        self.conv = nn.ConvTranspose2d(c_in, channels, 4, 2, 1, bias=False)
        self.act = nn.Sigmoid()  # lesion site: the R, G, B output channels are players too
        self.act.unit_axis = 1

    def forward(self, x):
        return self.act(self.conv(x))


class Generator(nn.Module):
    def __init__(self, cfg: dict):
        super().__init__()
        self.cfg = dict(cfg)
        widths = cfg["widths"]
        self.blocks = nn.ModuleList([GenBlock(cfg["nz"], widths[0], first=True)] +
                                    [GenBlock(a, b) for a, b in zip(widths[:-1], widths[1:])])
        self.out = OutBlock(widths[-1], cfg["channels"])

    def forward(self, z):
        x = z.reshape(len(z), -1, 1, 1)
        for block in self.blocks:
            x = block(x)
        return self.out(x)

    def lesion_sites(self) -> list[str]:
        """Names of the activation modules whose channels are the players, input side first."""
        return [f"blocks.{i}.act" for i in range(len(self.blocks))] + ["out.act"]

    def layer_sizes(self) -> list[int]:
        return list(self.cfg["widths"]) + [self.cfg["channels"]]


class Discriminator(nn.Module):
    """Spectral-normalised convs, LeakyReLU 0.2, BatchNorm in the middle blocks, sigmoid output."""

    def __init__(self, cfg: dict):
        super().__init__()
        sn = nn.utils.spectral_norm
        widths = list(reversed(cfg["widths"]))  # mirror the generator: narrow at the image, wide at 4 x 4
        layers = [sn(nn.Conv2d(cfg["channels"], widths[0], 4, 2, 1, bias=False)), nn.LeakyReLU(0.2)]
        for a, b in zip(widths[:-1], widths[1:]):
            layers += [sn(nn.Conv2d(a, b, 4, 2, 1, bias=False)), nn.BatchNorm2d(b), nn.LeakyReLU(0.2)]
        layers += [sn(nn.Conv2d(widths[-1], 1, 4, 1, 0, bias=False)), nn.Sigmoid()]
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x).reshape(-1)


def init_weights(module):
    """DCGAN initialisation (Radford et al.): conv weights N(0, 0.02), BN weights N(1, 0.02)."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        weight = getattr(module, "weight_orig", module.weight)  # spectral norm keeps the raw weight here
        nn.init.normal_(weight, 0.0, 0.02)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


def fixed_noise(n: int = 32, nz: int = NZ, seed: int = 0) -> torch.Tensor:
    """The seeded noise batch whose images are the game's value (same seed -> same faces)."""
    return torch.randn(n, nz, 1, 1, generator=torch.Generator().manual_seed(seed))


def save_generator(path, generator: Generator, noise: torch.Tensor, **info):
    """state_dict + config + fixed noise: loadable with torch.load(weights_only=True), no pickled module; written
    atomically."""
    from common.weights import save_weights
    config = dict(generator.cfg, widths=list(generator.cfg["widths"]))
    save_weights(path, dict(generator=generator.state_dict(), config=config, fixed_noise=noise, **info))


def load_generator(path, device="cpu") -> tuple[Generator, torch.Tensor, dict]:
    """(generator in eval mode, fixed noise, the whole checkpoint dict)."""
    from common.weights import load_weights
    ckpt = load_weights(path, "generator checkpoint", map_location=device)
    if "generator" not in ckpt or "config" not in ckpt:
        raise ValueError(f"{path} is not a generator checkpoint written by DCGAN/train.py "
                         f"(keys: {sorted(ckpt)})")
    cfg = dict(ckpt["config"])
    cfg["widths"] = tuple(cfg["widths"])
    generator = Generator(cfg).to(device)
    generator.load_state_dict(ckpt["generator"])
    generator.eval()  # BN uses running statistics: each image (and coalition) is independent of the batch
    return generator, ckpt["fixed_noise"].to(device), ckpt
