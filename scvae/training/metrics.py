"""Reconstruction metrics of a model on held-out images: PSNR, SSIM, code sparsity."""

from __future__ import annotations

import torch

from ..model import SCVAE
from ..sparse import active_fraction, hoyer_sparsity


def psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR in dB of images in [0, 1], shape [B, C, H, W]."""
    mse = (a - b).pow(2).flatten(1).mean(1).clamp_min(1e-10)
    return 10 * torch.log10(1.0 / mse)


def _gaussian_window(sigma: float, radius: int, dtype, device) -> torch.Tensor:
    x = torch.arange(-radius, radius + 1, dtype=dtype, device=device)
    g = torch.exp(-(x ** 2) / (2 * sigma ** 2))
    return g / g.sum()


def ssim(a: torch.Tensor, b: torch.Tensor, sigma: float = 1.5) -> list[float]:
    """Per-image SSIM of images in [0, 1], [B, C, H, W], as Wang et al. 2004 define it.

    A Gaussian window (sigma 1.5, radius 5), population statistics, K1 = 0.01, K2 = 0.03, the
    mean over the pixels whose window lies inside the image, averaged over channels: the same
    numbers as scikit-image's `structural_similarity(..., gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=1)`, computed in torch on the model's device.
    """
    radius = int(3.5 * sigma + 0.5)
    x, y = a.double(), b.double()
    channels = x.shape[1]
    g = _gaussian_window(sigma, radius, x.dtype, x.device)
    kernel_h = g.view(1, 1, 1, -1).repeat(channels, 1, 1, 1)
    kernel_v = g.view(1, 1, -1, 1).repeat(channels, 1, 1, 1)

    def blur(t: torch.Tensor) -> torch.Tensor:  # separable, no padding: only full windows
        t = torch.nn.functional.conv2d(t, kernel_h, groups=channels)
        return torch.nn.functional.conv2d(t, kernel_v, groups=channels)

    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x ** 2
    var_y = blur(y * y) - mu_y ** 2
    cov = blur(x * y) - mu_x * mu_y
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    s = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x ** 2 + mu_y ** 2 + c1) * (var_x + var_y + c2))
    return s.flatten(2).mean(-1).mean(-1).tolist()


def reconstruction_batches(model: SCVAE, images: torch.Tensor, batch_size: int = 16):
    """Yields (images, reconstructions, codes) batch by batch: images and reconstructions in
    [0, 1] [B, 3, H, W], codes [B, h, w, K], from held-out images in [-1, 1]. The model is in
    eval mode and gradients are off while it runs; its mode is restored at the end."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    try:
        for start in range(0, len(images), batch_size):
            x = images[start:start + batch_size].to(device)
            with torch.inference_mode():
                out = model(x)
                a = ((x.float() + 1) / 2).clamp(0, 1)
                b = ((out.reconstruction.float() + 1) / 2).clamp(0, 1)
            yield a, b, out.codes
    finally:
        model.train(was_training)


def evaluate_reconstruction(model: SCVAE, images: torch.Tensor, batch_size: int = 16) -> dict[str, float]:
    """Mean PSNR/SSIM of reconstructions and code sparsity on held-out images in [-1, 1]."""
    psnrs, ssims, hoyers, active, entries = [], [], [], [], []
    for a, b, codes in reconstruction_batches(model, images, batch_size):
        psnrs += psnr(b, a).tolist()
        ssims += ssim(b, a)
        hoyers.append(hoyer_sparsity(codes.float()).flatten())
        active.append(active_fraction(codes))
        entries.append(codes.numel())
    return {
        "val_psnr": float(sum(psnrs) / len(psnrs)),
        "val_ssim": float(sum(ssims) / len(ssims)),
        "val_hoyer": float(torch.cat(hoyers).mean()),
        "val_active": sum(a * n for a, n in zip(active, entries)) / sum(entries),
        "val_images": len(psnrs),
    }
