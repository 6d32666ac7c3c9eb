"""Using trained models outside training, for any registered task.

One module per job, imported on demand (this package imports nothing):

- :mod:`~csa_keras.inference.loading`: the run or model path resolver, the
  bounded ``.keras`` archive inspector, the one safe model loader, and the
  class names and channels a run recorded;
- :mod:`~csa_keras.inference.probabilities`: class probabilities from a
  model's outputs through its task, as rows summing to 1;
- :mod:`~csa_keras.inference.inputs`: files and folders to predict on, and
  sampled video frames;
- :mod:`~csa_keras.inference.drawing`: records drawn on their images, and
  the folder of annotated copies;
- :mod:`~csa_keras.inference.predictor`: :class:`Predictor`, the faces of
  photographs, folders and videos classified (``python -m csa_keras.predict``);
- :mod:`~csa_keras.inference.stream`: live input (a camera, a video file or
  a stream URL), probabilities smoothed over the last frames;
- :mod:`~csa_keras.inference.window`: the live window of ``predict --show``;
- :mod:`~csa_keras.inference.video`: annotated videos and their timeline of
  probabilities (CSV and plot);
- :mod:`~csa_keras.inference.evaluation`: a trained model scored on other
  labelled data (``python -m csa_keras.evaluate``);
- :mod:`~csa_keras.inference.artifacts`: SavedModel and TFLite artifacts
  written, run and timed;
- :mod:`~csa_keras.inference.onnx_artifact`: ONNX artifacts written with
  tf2onnx and run on ONNX Runtime (the ``onnx`` extra);
- :mod:`~csa_keras.inference.run_images`: a run's test images and labels
  re-created, for the parity check and the notebooks;
- :mod:`~csa_keras.inference.quantize`: the calibration faces of an int8
  TFLite export and the accuracy record of a quantised artifact;
- :mod:`~csa_keras.inference.export`: a run's model exported and checked
  (``python -m csa_keras.export``); :mod:`~csa_keras.inference.export_record`
  its record in ``export.json`` and its summary lines.
"""
