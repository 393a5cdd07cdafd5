"""Batch-norm statistics measured for a given set of weights.

An average of weights (SWA) is a network that never trained: the running means and variances its
BatchNorm layers carry are an average of other networks' statistics, not its own. Izmailov et al.
(2018) recompute them with one pass over the training data; this is that pass.

Written here rather than calling `torch.optim.swa_utils.update_bn`, which puts the whole network in
train mode: its dropout layers would then drop activations while the statistics are measured, and
draw random numbers that shift the rest of the run's random stream (breaking exact resume).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

STATISTICS_BATCH = 1000  # images per forward pass; the statistics are averaged over the batches
# Training rows the statistics are measured on: a pass over all 37,800 took 80 s on one shared CPU
# thread (DeotteCNN); 5,000 measure them as well (docs/strong-network.md) in a seventh of the time.
STATISTICS_IMAGES = 5000


def evenly_spaced(images: Tensor, count: int = STATISTICS_IMAGES) -> Tensor:
    """`count` rows spread over the whole set (all of them if fewer): no random draw, every digit."""
    if len(images) <= count:
        return images
    return images[torch.linspace(0, len(images) - 1, count, device=images.device).long()]


def batch_norm_layers(network: nn.Module) -> list[_BatchNorm]:
    return [module for module in network.modules() if isinstance(module, _BatchNorm) and module.track_running_stats]


@torch.no_grad()
def recompute_batch_norm(network: nn.Module, images: Tensor, batch_size: int = STATISTICS_BATCH) -> bool:
    """Replace every BatchNorm layer's running statistics with those of `images` (model input,
    (N, 1, 28, 28)) under the network's current weights. Every other layer runs in eval mode, so
    nothing random is drawn. Returns False, doing nothing, for a network without BatchNorm."""
    layers = batch_norm_layers(network)
    if not layers:
        return False
    was_training = network.training
    network.eval()
    momenta = [layer.momentum for layer in layers]
    for layer in layers:
        layer.reset_running_stats()
        layer.momentum = None  # a cumulative average over the batches, not an exponential one
        layer.train()
    try:
        for batch in images.split(batch_size):
            network(batch)
    finally:
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum
        network.train(was_training)
    return True


def batch_norm_buffers(network: nn.Module) -> dict[str, Tensor]:
    """The running statistics of every BatchNorm layer, by their names in `network.state_dict()`."""
    layers = {id(layer) for layer in batch_norm_layers(network)}
    return {f"{module_name}.{name}" if module_name else name: buffer
            for module_name, module in network.named_modules() if id(module) in layers
            for name, buffer in module.named_buffers(recurse=False)}
