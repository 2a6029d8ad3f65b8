"""Evaluation: quality metrics (PSNR, SSIM, L1 inside the hole or over the image; landmark NME)."""
