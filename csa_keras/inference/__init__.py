"""Using trained models outside training.

Submodules are imported on demand, so importing this package loads neither
TensorFlow nor Keras; :mod:`csa_keras.inference.predictor` classifies the
faces in photographs, folders and videos (``python -m csa_keras.predict``).
"""
