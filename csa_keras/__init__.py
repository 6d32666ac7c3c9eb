"""Facial expression recognition in Keras 3: a shared core and the CSA task.

The core, which never imports a task, sits in layers, each importing only
those below it:

- :mod:`csa_keras.utils`, :mod:`csa_keras.tasks`, :mod:`csa_keras.layers`:
  atomic files, one-line errors, the task registry, shared layer settings;
- :mod:`csa_keras.data`: dataset readers, Viola-Jones face preprocessing,
  evaluation protocols, the built-in synthetic faces;
- :mod:`csa_keras.evaluation`: metrics, statistics, figures, Grad-CAM,
  report pieces and model cards;
- :mod:`csa_keras.training`: configs, strategy and precision, pipelines, the
  resumable fit, the run directory and the experiment every task runs;
- :mod:`csa_keras.inference`: safe model loading, prediction, evaluation on
  other data, export;
- the commands ``python -m csa_keras.train | predict | evaluate | export``.

The CSA of Mohana & Subashini, *Convolutional Sparse Autoencoder for Emotion
Recognition*, is the task :mod:`csa_keras.csa`; the Voting ResNet is the
package :mod:`voting_resnet`. Tasks register themselves through the
``csa_keras.tasks`` entry points, so the commands serve both without naming
either. Importing this package imports neither TensorFlow nor Keras; it chooses
TensorFlow's convolution kernels for this CPU before TensorFlow loads
(:func:`csa_keras.utils.cpu.configure_onednn`: oneDNN on every x86-64 CPU with
AVX2, unless ``TF_ENABLE_ONEDNN_OPTS`` is set), and has TensorFlow, whoever
imports it, load without its C++ start-up lines on stderr, as the commands do
(:func:`csa_keras.utils.quiet.quiet_tensorflow_import`; ``TF_CPP_MIN_LOG_LEVEL``
set by the user is honoured, 0 shows every line).
"""
from csa_keras.utils.cpu import configure_onednn
from csa_keras.utils.quiet import quiet_tensorflow_import

configure_onednn()
quiet_tensorflow_import()

__version__ = "0.1.0"
