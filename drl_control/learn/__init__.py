"""Learning: configs, SB3 algorithm construction, spectral norm, observation normalization,
training loop + callbacks, evaluation, export of the deploy artifact.

Submodules import torch/SB3; import them directly (`from drl_control.learn.train import train`).
"""
