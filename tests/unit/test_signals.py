"""CtrlCHold: Ctrl-C during a step group is held back and raised before the next one."""

from __future__ import annotations

import signal

import pytest

from digit_recognizer.signals import CtrlCHold


def test_ctrl_c_during_a_group_is_raised_before_the_next():
    hold = CtrlCHold()
    with hold.holding():
        signal.raise_signal(signal.SIGINT)  # noted, not raised: the group's steps go on
        finished = True
    assert finished and hold.pending
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    with pytest.raises(KeyboardInterrupt), hold.holding():
        pytest.fail("the next group must not start")
    assert not hold.pending
