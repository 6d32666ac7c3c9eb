"""Ctrl-C held back to a safe point (csa_keras.utils.interrupt.HeldInterrupt), and training that
stops between two steps, after the step in progress, when Ctrl-C comes in the middle of one."""
import os
import signal
import threading

import keras
import numpy as np
import pytest
import tensorflow as tf

from csa_keras.training import loop
from csa_keras.utils.interrupt import HeldInterrupt


def press() -> None:
    """Ctrl-C to this process; the handler has run by the time this returns."""
    os.kill(os.getpid(), signal.SIGINT)
    for _ in range(3):
        pass


def test_a_held_ctrl_c_is_raised_at_check_and_not_before():
    reached = []
    with pytest.raises(KeyboardInterrupt), HeldInterrupt() as held:
        assert held.active
        press()
        reached.append("after the press")
        held.check()
        reached.append("after check")
    assert reached == ["after the press"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_held_ctrl_c_is_raised_when_the_block_ends():
    reached = []
    with pytest.raises(KeyboardInterrupt), HeldInterrupt():
        press()
        reached.append("end of the block")
    assert reached == ["end of the block"]


def test_an_error_of_the_block_is_not_replaced_by_the_held_ctrl_c():
    with pytest.raises(ValueError, match="the block's own"), HeldInterrupt():
        press()
        raise ValueError("the block's own error")
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_block_without_ctrl_c_ends_quietly():
    with HeldInterrupt() as held:
        held.check()
    assert held.presses == 0


def test_a_second_press_raises_at_once_when_the_block_escalates():
    reached = []
    with pytest.raises(KeyboardInterrupt), HeldInterrupt(escalate=True):
        press()
        reached.append("first press held")
        press()
        reached.append("second press held")
    assert reached == ["first press held"]


def test_without_escalation_every_press_is_held():
    with pytest.raises(KeyboardInterrupt), HeldInterrupt() as held:
        press()
        press()
        assert held.presses == 2


def test_an_ignored_or_custom_handler_is_left_alone():
    custom = lambda *_: None  # noqa: E731
    previous = signal.signal(signal.SIGINT, custom)
    try:
        with HeldInterrupt() as held:
            assert not held.active
            assert signal.getsignal(signal.SIGINT) is custom
        assert signal.getsignal(signal.SIGINT) is custom
    finally:
        signal.signal(signal.SIGINT, previous)


def test_off_the_main_thread_nothing_is_held():
    seen = []

    def body():
        with HeldInterrupt() as held:
            seen.append(held.active)

    thread = threading.Thread(target=body)
    thread.start()
    thread.join()
    assert seen == [False]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


class Steps(keras.callbacks.Callback):
    """Records the steps that began and ended; presses Ctrl-C as step ``press_at`` begins."""

    def __init__(self, press_at: int) -> None:
        super().__init__()
        self.press_at, self.began, self.ended = press_at, [], []

    def on_train_batch_begin(self, batch, logs=None):
        self.began.append(batch)
        if batch == self.press_at:
            press()

    def on_train_batch_end(self, batch, logs=None):
        self.ended.append(batch)


def test_ctrl_c_during_a_training_step_stops_training_after_that_step():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    model.compile(optimizer="sgd", loss="mse")
    rng = np.random.default_rng(0)
    data = tf.data.Dataset.from_tensor_slices(
        (rng.normal(size=(40, 4)).astype("float32"), rng.normal(size=(40, 3)).astype("float32"))
    ).batch(8)
    steps = Steps(press_at=2)
    with pytest.raises(KeyboardInterrupt):
        loop.fit(model, data, epochs=2, callbacks=[steps], strategy=tf.distribute.get_strategy(),
                 verbose=0)
    assert steps.began == [0, 1, 2] and steps.ended == [0, 1, 2]
    assert int(model.optimizer.iterations) == 3
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
