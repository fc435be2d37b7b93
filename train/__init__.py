"""The reference video GAN's trainer (``train/gan.py``), datasets, sampling and gallery helpers."""
