"""Facial expression recognition in Keras 3: a shared core and the CSA task.

``docs/layout.md`` maps the packages: the core's layers, which never import a
task, the CSA (:mod:`csa_keras.csa`), the Voting ResNet (:mod:`voting_resnet`)
and the registry through which the commands serve both.

Importing this package imports neither TensorFlow nor Keras; it chooses
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
