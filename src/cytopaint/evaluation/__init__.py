"""Evaluation of artifact repair: classical baselines, fidelity metrics and FCD perturbations."""
