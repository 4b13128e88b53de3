"""One training step and the validation steps, for Keras 3 on TensorFlow or on JAX.

The backend is Keras's (``KERAS_BACKEND``, read when ``keras`` is first imported; ``python -m
tools.train --backend jax`` sets it). TensorFlow runs ``tf.function`` steps with a
``GradientTape`` on the model's own variables. JAX runs jitted, stateless steps
(``model.stateless_call`` + ``jax.value_and_grad`` + ``optimizer.stateless_apply``) on a copy of
the variables, which :meth:`Steps.sync` writes back into the model (before a checkpoint, an
export or anything else that reads the model's weights). Both compute the same losses
(:mod:`tools.train.losses` uses ``keras.ops`` only).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tools.train.losses import l1_per_stem, sdr_per_stem

__all__ = ["Steps", "make_steps"]

StemLosses = Callable[[Any, list[Any], Any], list[Any]]
"""``stem_losses(outputs, targets, mix) -> [loss per stem]`` (backend tensors)."""


@dataclass
class Steps:
    """The step functions of one model and optimizer.

    ``train(x, ys)`` runs one optimizer step and returns the per-stem losses; ``eval_l1(x, ys)``
    and ``eval_sdr(x, ys)`` return the seed's L1 and the negative spectral SDR per stem
    (inference mode); ``sync()`` makes the model's variables current.
    """

    train: Callable[[Any, list[Any]], list[Any]]
    eval_l1: Callable[[Any, list[Any]], list[Any]]
    eval_sdr: Callable[[Any, list[Any]], list[Any]]
    sync: Callable[[], None]


def make_steps(
    model: Any, optimizer: Any, stem_losses: StemLosses, exponent: float, n_mix: int
) -> Steps:
    """Steps for the current Keras backend (``tensorflow`` or ``jax``).

    ``n_mix`` is the number of mix channels at the front of the network input: the spectral
    SDR of validation is computed against them only (a floor context's channels follow them).

    Raises
    ------
    ValueError
        For another backend.
    """
    import keras

    backend = keras.backend.backend()
    if backend == "tensorflow":
        return _tensorflow_steps(model, optimizer, stem_losses, exponent, n_mix)
    if backend == "jax":
        return _jax_steps(model, optimizer, stem_losses, exponent, n_mix)
    raise ValueError(f"training supports the tensorflow and jax Keras backends, not {backend!r}")


def _tensorflow_steps(
    model: Any, optimizer: Any, stem_losses: StemLosses, exponent: float, n_mix: int
) -> Steps:
    import tensorflow as tf

    @tf.function
    def train(x: Any, ys: list[Any]) -> list[Any]:
        with tf.GradientTape() as tape:
            losses = stem_losses(model(x, training=True), ys, x)
            loss = tf.add_n(losses)
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        return losses

    @tf.function
    def eval_l1(x: Any, ys: list[Any]) -> list[Any]:
        return l1_per_stem(model(x, training=False), ys)

    @tf.function
    def eval_sdr(x: Any, ys: list[Any]) -> list[Any]:
        return sdr_per_stem(model(x, training=False), ys, x[..., :n_mix], exponent)

    return Steps(train, eval_l1, eval_sdr, lambda: None)


def _jax_steps(
    model: Any, optimizer: Any, stem_losses: StemLosses, exponent: float, n_mix: int
) -> Steps:
    import jax

    state = {
        "trainable": [v.value for v in model.trainable_variables],
        "non_trainable": [v.value for v in model.non_trainable_variables],
        "optimizer": [v.value for v in optimizer.variables],
    }

    def total_loss(trainable: Any, non_trainable: Any, x: Any, ys: list[Any]) -> Any:
        outputs, non_trainable = model.stateless_call(trainable, non_trainable, x, training=True)
        losses = stem_losses(outputs, ys, x)
        return sum(losses[1:], losses[0]), (losses, non_trainable)

    grad_fn = jax.value_and_grad(total_loss, has_aux=True)

    @jax.jit
    def jit_train(
        trainable: Any, non_trainable: Any, opt_vars: Any, x: Any, ys: list[Any]
    ) -> tuple[list[Any], Any, Any, Any]:
        (_, (losses, non_trainable)), grads = grad_fn(trainable, non_trainable, x, ys)
        trainable, opt_vars = optimizer.stateless_apply(opt_vars, grads, trainable)
        return losses, trainable, non_trainable, opt_vars

    @jax.jit
    def jit_eval(trainable: Any, non_trainable: Any, x: Any, ys: list[Any]) -> tuple[Any, Any]:
        outputs, _ = model.stateless_call(trainable, non_trainable, x, training=False)
        return l1_per_stem(outputs, ys), sdr_per_stem(outputs, ys, x[..., :n_mix], exponent)

    def train(x: Any, ys: list[Any]) -> list[Any]:
        losses, state["trainable"], state["non_trainable"], state["optimizer"] = jit_train(
            state["trainable"], state["non_trainable"], state["optimizer"], x, ys
        )
        return list(losses)

    def eval_l1(x: Any, ys: list[Any]) -> list[Any]:
        return list(jit_eval(state["trainable"], state["non_trainable"], x, ys)[0])

    def eval_sdr(x: Any, ys: list[Any]) -> list[Any]:
        return list(jit_eval(state["trainable"], state["non_trainable"], x, ys)[1])

    def sync() -> None:
        for variables, values in (
            (model.trainable_variables, state["trainable"]),
            (model.non_trainable_variables, state["non_trainable"]),
            (optimizer.variables, state["optimizer"]),
        ):
            for variable, value in zip(variables, values, strict=True):
                variable.assign(value)

    return Steps(train, eval_l1, eval_sdr, sync)
