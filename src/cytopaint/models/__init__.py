"""Packaged networks (the DDPM and the area classifier) and their training; the bundled demo packages
are the data folders ``demo/`` and ``classifier-demo/``."""
