"""DeotteCNN, the stronger network beside DigitCNN: its shape, size, modes and wiring."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from digit_recognizer.constants import IMAGE_SIZE, NUM_CLASSES
from digit_recognizer.models import DeotteCNN


PARAMETERS = 326_410  # the class docstring's number
MULTIPLY_ADDS = 15_162_752  # conv 1..7 and the dense layer, counted by hand in docs/strong-network.md


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def images(n: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 1, IMAGE_SIZE, IMAGE_SIZE, generator=torch.Generator().manual_seed(seed))


def test_logits_are_batch_by_classes_floats():
    logits = DeotteCNN()(images(3))
    assert logits.shape == (3, NUM_CLASSES)
    assert logits.dtype == torch.float32
    assert torch.isfinite(logits).all()


def test_parameter_count_and_flops_are_the_documented_ones():
    network = DeotteCNN()
    assert sum(p.numel() for p in network.parameters() if p.requires_grad) == PARAMETERS
    assert "326,410" in DeotteCNN.__doc__ and "15.16 M multiply-adds" in DeotteCNN.__doc__
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        network.eval()(images(1))
    assert counter.get_total_flops() == 2 * MULTIPLY_ADDS


def test_width_scales_every_block():
    network = DeotteCNN(width=16)
    widths = [m.out_channels for m in network.modules() if isinstance(m, nn.Conv2d)]
    assert widths == [16, 16, 16, 32, 32, 32, 64]
    assert network.classifier[-1].in_features == 64
    assert network(images(2)).shape == (2, NUM_CLASSES)


def test_eval_mode_is_deterministic_and_per_image_while_train_mode_is_not():
    torch.manual_seed(0)
    network = DeotteCNN()
    batch = images(8)
    bn = next(m for m in network.modules() if isinstance(m, nn.BatchNorm2d))

    network.train()
    before = bn.running_mean.clone()
    first, second = network(batch), network(batch)
    assert not torch.allclose(first, second)  # dropout draws new masks
    assert not torch.equal(bn.running_mean, before)  # batch statistics update the running ones

    network.eval()
    before = bn.running_mean.clone()
    with torch.no_grad():
        together = network(batch)
        assert torch.equal(together, network(batch))
        alone = network(batch[:1])  # running statistics: an image's logits do not depend on its batch
    assert torch.allclose(together[:1], alone, atol=1e-5)
    assert torch.equal(bn.running_mean, before)


def test_a_few_dozen_steps_memorise_64_random_labels():
    torch.manual_seed(0)
    network = DeotteCNN()
    batch = images(64, seed=1)
    labels = torch.randint(0, NUM_CLASSES, (64,), generator=torch.Generator().manual_seed(2))
    optimizer = torch.optim.Adam(network.parameters(), lr=1e-3)
    losses = []
    for _ in range(40):
        optimizer.zero_grad()
        loss = F.cross_entropy(network(batch), labels)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    # train-mode loss (batch statistics): BN's running averages (Keras' momentum) lag far behind in 40 steps
    assert losses[0] > 2.0
    assert losses[-1] < 0.3


def test_the_logits_come_from_a_final_linear_fed_by_the_embedding():
    network = DeotteCNN().eval()
    calls = []
    for module in network.modules():
        if not list(module.children()):
            module.register_forward_hook(lambda m, inputs, output: calls.append((m, inputs[0], output)))
    with torch.no_grad():
        logits = network(images(5))
    last, embedding, output = calls[-1]
    assert isinstance(last, nn.Linear) and last is network.classifier[-1]
    assert output is logits
    assert embedding.shape == (5, 128)
