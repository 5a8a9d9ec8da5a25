"""Held-out reconstruction quality of a model: PSNR, SSIM and code sparsity (Hoyer, active share).

The held-out images are the last N of the folder's sorted file names (what `data.holdout`
keeps out of training), centre-cropped at --size.

    .venv/bin/python bench/reconstruction.py --data-root ../shared/data/imagenet-sample [--model NAME|PATH]
"""

from __future__ import annotations

import argparse


def main() -> None:
    import scvae
    from scvae.training.metrics import evaluate_reconstruction
    from segtool.training.data import DataConfig, load_image_sets, validation_tensor

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", required=True)
    parser.add_argument("--model", default=scvae.DEFAULT_MODEL)
    parser.add_argument("--holdout", type=int, default=50)
    parser.add_argument("--size", type=int, nargs="+", default=[128, 256])
    args = parser.parse_args()

    model = scvae.load(args.model)
    _, held_out = load_image_sets(DataConfig(root=args.data_root, holdout=args.holdout, val_limit=args.holdout))
    for size in args.size:
        metrics = evaluate_reconstruction(model, validation_tensor(held_out, size))
        print(f"{metrics['val_images']} held-out images at {size}x{size}: PSNR {metrics['val_psnr']:.2f} dB, "
              f"SSIM {metrics['val_ssim']:.3f}, Hoyer sparsity {metrics['val_hoyer']:.3f}, "
              f"active codes {100 * metrics['val_active']:.1f}%")


if __name__ == "__main__":
    main()
