"""One training entry point for every strategy: ``model.fit``, or a distributed loop across workers.

Why two paths: Keras 3's ``model.fit``,
``evaluate`` and the rest of its data handling fail under
``tf.distribute.MultiWorkerMirroredStrategy`` with "Attempt to convert a
value (PerReplica...)" (keras-team/keras#20585, open for TensorFlow 2.21 and
Keras 3.15), while the model's own ``train_step`` run by ``strategy.run`` on
a ``strategy.experimental_distribute_dataset`` trains correctly. On one
machine (one device, or ``MirroredStrategy`` over its GPUs) :func:`fit` is
``model.fit``: the path Keras maintains and optimises. Across workers it is
:func:`distributed_fit`, a loop that does what ``fit`` does with the same
pieces: the model's compiled loss (sparsity penalties and per-replica loss
scaling included) and metrics through ``train_step`` and ``test_step``, a
``keras.callbacks.CallbackList`` with the same callbacks (best checkpoint,
CSV log, per-epoch backup, learning-rate schedule, progress bar), and the
same history keys. Both therefore share :class:`~csa_keras.training.callbacks.TrainingPhase`,
its checkpoints and the run directory, and the loop can be dropped when
Keras fixes ``fit``.

What the loop adds for several workers:

- every worker starts from the chief's state (:func:`sync_from_chief`): the
  weights, optimizer state and epoch that the chief's backup
  restored, so a resumed run continues in step even where another worker
  lost its own backup;
- BatchNormalization's moving statistics, which each worker updates from its
  own batches, are averaged across workers after every epoch
  (:func:`average_non_trainable`), so validation, checkpoints and the final
  weights are identical on every worker;
- validation runs on every worker over the whole validation set with
  ``test_step`` outside the replica context (no collective op, so uneven
  shards cannot stall a worker); each gets the same numbers.
"""
from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from csa_keras.training.callbacks import InterruptBetweenSteps
from csa_keras.utils.interrupt import HeldInterrupt


def is_multi_worker(strategy: tf.distribute.Strategy | None) -> bool:
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


def fit(model: keras.Model, data: tf.data.Dataset, *, epochs: int,
        callbacks: list[keras.callbacks.Callback], strategy: tf.distribute.Strategy,
        validation_data: tf.data.Dataset | None = None, steps_per_epoch: int | None = None,
        verbose: int | str = "auto") -> None:
    """Train ``model`` as ``model.fit`` would, under any strategy (see the module docstring).

    Ctrl-C stops the training between two steps, after the callbacks of the
    step or epoch in progress have run (an epoch's backup is complete), not
    at whatever instruction TensorFlow is executing
    (:class:`~csa_keras.training.callbacks.InterruptBetweenSteps`); a second
    Ctrl-C stops it at once.
    """
    with HeldInterrupt(escalate=True) as held:
        callbacks = [*callbacks, InterruptBetweenSteps(held)]
        if is_multi_worker(strategy):
            distributed_fit(model, data, epochs=epochs, callbacks=callbacks, strategy=strategy,
                            validation_data=validation_data, steps_per_epoch=steps_per_epoch,
                            verbose=verbose)
        else:
            model.fit(data, validation_data=validation_data, epochs=epochs,
                      steps_per_epoch=steps_per_epoch, callbacks=callbacks, verbose=verbose,
                      shuffle=False)


def _steps(data: tf.data.Dataset, steps_per_epoch: int | None) -> int:
    if steps_per_epoch is not None:
        return int(steps_per_epoch)
    cardinality = int(data.cardinality())
    if cardinality < 0:
        raise ValueError("an endless or unknown-length dataset needs steps_per_epoch")
    return cardinality


def distributed_fit(model: keras.Model, data: tf.data.Dataset, *, epochs: int,
                    callbacks: list[keras.callbacks.Callback], strategy: tf.distribute.Strategy,
                    validation_data: tf.data.Dataset | None = None,
                    steps_per_epoch: int | None = None, verbose: int | str = "auto") -> None:
    """``model.fit`` as a loop of ``strategy.run(model.train_step)`` (keras#20585).

    ``data`` yields global batches; ``strategy.experimental_distribute_dataset``
    splits them over the replicas of every worker. Every worker must take the
    same number of steps (a collective op waits for all), so an epoch is
    ``steps_per_epoch`` steps, or the dataset's cardinality; an endless
    dataset keeps one iterator across epochs, as ``fit`` does. The model and
    its optimizer must have been built and compiled under ``strategy.scope()``.
    """
    steps = _steps(data, steps_per_epoch)
    with strategy.scope():
        if not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
    distributed = strategy.experimental_distribute_dataset(data)

    @tf.function
    def train_function(iterator):
        strategy.run(model.train_step, args=(next(iterator),))

    @tf.function
    def test_function(batch):
        model.test_step(batch)

    average = average_non_trainable(model, strategy)
    callback_list = keras.callbacks.CallbackList(
        callbacks, add_history=True, add_progbar=verbose != 0, verbose=verbose,
        epochs=epochs, steps=steps, model=model)
    model.stop_training = False
    callback_list.on_train_begin()
    # The backup hands the restored epoch to fit through model._initial_epoch.
    initial_epoch = sync_from_chief(model, strategy, getattr(model, "_initial_epoch", None) or 0)
    training_logs = None
    iterator = iter(distributed) if steps_per_epoch is not None else None
    for epoch in range(initial_epoch, epochs):
        model.reset_metrics()
        callback_list.on_epoch_begin(epoch)
        epoch_iterator = iterator if iterator is not None else iter(distributed)
        for step in range(steps):
            callback_list.on_train_batch_begin(step)
            train_function(epoch_iterator)
            callback_list.on_train_batch_end(step)
        logs = _logs(model)
        average()
        if validation_data is not None:
            model.reset_metrics()
            for batch in validation_data:
                test_function(batch)
            logs.update({f"val_{k}": v for k, v in _logs(model).items()})
        callback_list.on_epoch_end(epoch, logs)
        training_logs = logs
        if model.stop_training:
            break
    callback_list.on_train_end(logs=training_logs)


def _logs(model: keras.Model) -> dict[str, float]:
    return {k: float(v) for k, v in model.get_metrics_result().items()}


def _all_reduce_function(strategy: tf.distribute.Strategy, variables, keep_first: bool):
    """A ``tf.function`` replacing every variable by its mean over replicas, or by replica 0's."""
    variables = list(variables)

    def replica_fn():
        context = tf.distribute.get_replica_context()
        first = tf.equal(context.replica_id_in_sync_group, 0)
        values = []
        for v in variables:
            value = tf.cast(tf.identity(v.value), tf.float64)
            if keep_first:
                value = tf.where(first, value, tf.zeros_like(value))
            values.append(value)
        reduced = context.all_reduce(
            tf.distribute.ReduceOp.SUM if keep_first else tf.distribute.ReduceOp.MEAN, values)
        for v, value in zip(variables, reduced):
            v.assign(tf.cast(value, v.dtype))

    @tf.function
    def run():
        if variables:
            strategy.run(replica_fn)

    return run


def average_non_trainable(model: keras.Model, strategy: tf.distribute.Strategy):
    """A function averaging the floating non-trainable weights (BatchNorm moving statistics)."""
    return _all_reduce_function(strategy, [v for v in model.non_trainable_variables
                                           if "float" in str(v.dtype)], keep_first=False)


def chief_value(strategy: tf.distribute.Strategy, value: int) -> int:
    """Replica 0's (the chief's) ``value`` on every worker; ``value`` itself on one machine."""
    if not is_multi_worker(strategy):
        return int(value)

    def replica_fn():
        context = tf.distribute.get_replica_context()
        first = tf.equal(context.replica_id_in_sync_group, 0)
        return tf.where(first, tf.constant(int(value), tf.int64), tf.constant(0, tf.int64))

    @tf.function
    def run():
        return strategy.run(replica_fn)

    return int(strategy.reduce(tf.distribute.ReduceOp.SUM, run(), axis=None))


def sync_from_chief(model: keras.Model, strategy: tf.distribute.Strategy,
                    epoch: int = 0) -> int:
    """Give every replica replica 0's weights and optimizer state; return replica 0's ``epoch``.

    Replica 0 lives on the chief, whose backup and best
    checkpoint decide where a resumed run goes on. Outside multi-worker
    training there is nothing to synchronise and ``epoch`` is returned as is.
    """
    if not is_multi_worker(strategy):
        return epoch
    optimizer = getattr(model, "optimizer", None)
    optimizer_variables = list(optimizer.variables) if optimizer is not None else []
    _all_reduce_function(strategy, list(model.variables) + optimizer_variables, keep_first=True)()
    return chief_value(strategy, epoch)


def train_phase(model: keras.Model, phase, data: tf.data.Dataset, *, epochs: int,
                strategy: tf.distribute.Strategy, validation_data: tf.data.Dataset | None = None,
                steps_per_epoch: int | None = None, callbacks=(),
                verbose: int | str = "auto") -> dict[str, list[float]]:
    """Train one resumable phase (:class:`~csa_keras.training.callbacks.TrainingPhase`).

    A phase an earlier run finished is reloaded, not trained again; an
    unfinished one continues from its last completed epoch; either way the
    model ends with the best epoch's weights and the returned history covers
    every epoch of the phase. ``callbacks`` run before the phase's own (a
    learning-rate schedule). Under several workers the chief decides whether
    the phase is finished, and its weights are the ones every worker keeps.
    """
    if chief_value(strategy, phase.done):
        if phase.done:
            phase.load(model)
    else:
        fit(model, data, epochs=epochs, callbacks=[*callbacks, *phase.callbacks()],
            strategy=strategy, validation_data=validation_data,
            steps_per_epoch=steps_per_epoch, verbose=verbose)
        phase.finish(model)
    sync_from_chief(model, strategy)
    return phase.history()


def predict(model: keras.Model, data: tf.data.Dataset):
    """``model.predict(data)``; across workers, each worker predicts every batch itself.

    Under several workers ``model.predict`` shards the data, and a worker
    would see only its share; the model is small next to the data it was
    trained on, so each worker runs it over the whole (test) set locally
    instead, outside the replica context, and all get the same outputs.
    """
    if not is_multi_worker(model.distribute_strategy):
        return model.predict(data, verbose=0)
    @tf.function
    def call(x):
        return model(x, training=False)

    outputs = [keras.tree.map_structure(np.asarray, call(x)) for x in data]
    return keras.tree.map_structure(lambda *parts: np.concatenate(parts), *outputs)
