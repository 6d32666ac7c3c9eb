"""Expression prediction on photographs, folders and videos with a saved model.

:class:`Predictor` wraps a loaded Keras model of any registered task (the
CSA classifier, the Voting ResNet, ...); the task says which of the model's
outputs votes (:mod:`csa_keras.inference.probabilities`). Every image goes
through the preprocessing the model was trained with
(:mod:`csa_keras.data.faces`), so a photograph reaches the model exactly as a
training frame did:

* decoded with :func:`~csa_keras.data.faces.read_image` (EXIF orientation,
  any bit depth or palette, reduced to ``max_side`` pixels a side);
* searched for faces by :func:`~csa_keras.data.faces.locate_faces`, the
  function training calls, so the ``detect`` rule (with ``auto``, an image
  small enough to be a face crop already is taken whole), the margin, the
  no-face policy and the words for what happened
  (:data:`~csa_keras.data.faces.OUTCOMES`) are training's;
* cropped per face by :func:`~csa_keras.data.faces.face_in_box`, the cut,
  grey or colour conversion and ``INTER_AREA`` resize training uses; then
  scaled to [0, 1].

Training keeps only the largest face of a frame; prediction asks for every
face the cascade finds, largest first, so face 0 is the one training would
have used.

The input size and channels come from ``model.input_shape``; the class names
and the channels the run trained on from the run's files
(:mod:`csa_keras.inference.loading`).

The model runs on Keras or, without TensorFlow, as its TFLite artifact on
LiteRT (``runtime``: :mod:`csa_keras.inference.litert`); the records, the
faces and the labels are the same either way. A model with three input channels
trained on grey data gets grey faces repeated to three channels, as in
training.

Records
-------
Every detected face yields one record, a ``dict`` with the keys of
:data:`RECORD_KEYS`:

``source``
    the file path (``"<array>"`` or ``"<bytes>"`` for in-memory images).
``frame``, ``time_s``
    frame index and time in seconds in a video; ``None`` for images.
``face``
    index of the face in its image (0 = largest), ``None`` without a face.
``status``
    ``"ok"`` (a face was classified), ``"no_face"`` (the cascade found none;
    the image is reported, not dropped) or ``"error"`` (the file could not be
    read; ``error`` says why in one line).
``crop``
    how the face was taken, a word of :data:`~csa_keras.data.faces.OUTCOMES`:
    ``"detected"`` by the cascade, ``"whole"`` image (a face crop already), or
    the ``"center"`` square (``no_face="center"``); ``None`` without a face.
``box``
    ``[x, y, w, h]`` of the crop in the original image's pixels.
``label``, ``score``
    the predicted class and its probability.
``probabilities``
    ``{class name: probability}`` for every class of the model, summing to 1.
``error``
    the reason of an ``"error"`` record; for an ``"ok"`` or ``"no_face"``
    record, why its annotated copy was not written
    (:data:`~csa_keras.inference.annotate.ANNOTATION_SKIPPED` and the reason, such as a file name too long
    for the file system: that copy is skipped and the rest goes on); else
    ``None``.

Faces are classified in batches of ``batch_size`` collected across images and
frames (one ``predict_on_batch`` per batch), and records come out in input
order. With ``prefetch=N``, a thread decodes the next ``N`` images and frames
and searches them for faces while the model classifies the faces found so
far (:func:`~csa_keras.utils.prefetch.prefetch`). It is off by default: on 2
cores it bought nothing measurable (-3% to +2%, ``benchmarks/predict_pipeline.py``),
since OpenCV's detection already runs on every core; where cores are left
idle it overlaps the two.
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

from csa_keras.data.faces import (
    FaceDetector,
    FaceSettings,
    ImageDecodeError,
    LazyFaceDetector,
    NoFaceError,
    as_uint8_image,
    face_in_box,
    locate_faces,
    read_image,
    reduce_image,
)
from csa_keras.inference.annotate import Annotator, note_skipped_annotation
from csa_keras.inference.inputs import InputFile, collect_inputs, error_reason, frame_estimate, kind_of, video_frames
from csa_keras.inference.loading import (
    ModelSource,
    check_class_names,
    class_names_for,
    load_model,
    pretrained_run,
    trained_channels,
)
from csa_keras.inference.probabilities import as_probabilities, class_probabilities, num_classes
from csa_keras.inference.stream import FrameStream
from csa_keras.tasks import task_of_model
from csa_keras.utils.paths import check_outputs
from csa_keras.utils.prefetch import prefetch

RECORD_KEYS = ("source", "frame", "time_s", "face", "status", "crop", "box", "label", "score",
               "probabilities", "error")
"""The keys of every prediction record, in output order (module docstring)."""

RECORD_STATUSES = ("ok", "no_face", "error")
"""The values of a prediction record's ``status``, what the summary line counts (module docstring); a
face's crop outcome is one of :data:`~csa_keras.data.faces.OUTCOMES`."""
DEFAULT_BATCH_SIZE = 64
DEFAULT_PREFETCH = 0
"""Images or frames decoded and searched for faces ahead of the model, by a thread of their own (module docstring)."""


@dataclasses.dataclass
class _Entry:
    """One image or frame in flight: its records, the faces still to classify, what to draw on."""

    records: list[dict]
    faces: list[np.ndarray]
    item: InputFile | None = None
    image: np.ndarray | None = None
    original_shape: tuple[int, int] | None = None


def make_record(source: str, frame: int | None = None, time_s: float | None = None, **values: Any) -> dict:
    """A record with every key of :data:`RECORD_KEYS`, those not given ``None``."""
    record = dict.fromkeys(RECORD_KEYS)
    record.update(source=source, frame=frame, time_s=time_s, **values)
    return record


def _input_size(model, source: str) -> tuple[int, int]:
    """The square side and channels of the images ``model`` takes, or a one-line refusal."""
    shape = model.input_shape
    if isinstance(shape, list) or len(shape) != 4:
        raise ValueError(f"{source} takes input {shape}: a classifier of (batch, size, size, "
                         "channels) images is needed")
    _, height, width, channels = shape
    if height is None or height != width or channels not in (1, 3):
        raise ValueError(f"{source} takes input {shape}: square 1- or 3-channel images are needed")
    return int(height), int(channels)


def _refuse_autoencoder(model, source: str) -> None:
    """A model whose one output is shaped like its input reconstructs images: it classifies nothing."""
    output = model.output
    if not isinstance(output, (dict, list, tuple)) and tuple(output.shape[1:]) == tuple(model.input_shape[1:]):
        raise ValueError(f"{source} is an autoencoder (it reconstructs its input images): "
                         "predict with the run's classifier")


class Predictor:
    """Classify the expression of every face in images, folders and videos (module docstring).

    Args:
        model: a loaded Keras model that a registered task owns, or a
            TFLite artifact loaded for LiteRT
            (:class:`~csa_keras.inference.litert.LiteRTModel`).
        class_names: the ``K`` class names (default ``class_0`` ...).
        detect: ``auto`` (detect in frames, take small images whole),
            ``always`` or ``never``, as in training.
        no_face: ``skip`` (an image without a face gives one ``no_face``
            record), ``center`` (classify its centre square) or ``error``
            (raise :class:`~csa_keras.data.faces.NoFaceError`).
        voting: for a task whose probabilities take it (the Voting ResNet):
            ``soft`` or ``hard`` re-votes from the crop logits; ``None``
            uses the model's own vote. Refused for other tasks, and on LiteRT.
        batch_size: faces per model call.
        prefetch: images or frames decoded and searched for faces ahead of
            the model by a thread of their own (0, the default: in turn with it).
        grey: feed grey faces (repeated to the model's channels); default
            ``True`` for one-channel models, ``False`` otherwise.
        source: the model's path, named in error messages.
        **face_options: other :class:`~csa_keras.data.faces.FaceSettings`
            fields (``margin``, ``min_size``, ``scale_factor``,
            ``min_neighbors``, ``max_side``); the defaults are training's.

    ``task`` is the name of the task the model belongs to (``None`` for a
    TFLite artifact whose files do not record it); ``runtime`` is ``keras``
    or ``litert``.
    """

    def __init__(self, model, class_names: Sequence[str] | None = None, *, detect: str = "auto",
                 no_face: str = "skip", voting: str | None = None, batch_size: int = DEFAULT_BATCH_SIZE,
                 prefetch: int = DEFAULT_PREFETCH, grey: bool | None = None, source: str | None = None,
                 **face_options: Any) -> None:
        self.model = model
        self.source = source or getattr(model, "name", "model")
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer. Received: batch_size={batch_size!r}")
        if not isinstance(prefetch, int) or isinstance(prefetch, bool) or prefetch < 0:
            raise ValueError(f"prefetch must be an integer of at least 0. Received: prefetch={prefetch!r}")
        self.prefetch = prefetch
        size, channels = _input_size(model, self.source)
        self.runtime = getattr(model, "runtime", "keras")
        self.options = {} if voting is None else {"voting": voting}
        if self.runtime == "litert":
            if voting is not None:
                raise ValueError(f"voting re-votes the crop logits with the keras runtime only; {self.source} "
                                 f"runs on litert. Received: voting={voting!r}")
            self._task, self.task, self.num_classes = None, model.task, model.num_classes
        else:
            _refuse_autoencoder(model, self.source)
            self._task = task_of_model(model)
            self.task = self._task.name
            self.num_classes = num_classes(self._task, model, self.source, **self.options)
        names = ([f"class_{i}" for i in range(self.num_classes)] if class_names is None
                 else [str(n) for n in class_names])
        self.class_names = check_class_names(names, self.num_classes, "the Predictor's arguments")
        self.channels = channels
        self.grey = channels == 1 if grey is None else bool(grey)
        self.voting = voting
        self.batch_size = batch_size
        self.settings = FaceSettings(size=size, colour=not self.grey, detect=detect, no_face=no_face,
                                     **face_options)
        self.no_face = no_face
        self._finder = LazyFaceDetector(self.settings)

    @classmethod
    def from_run(cls, path: str | os.PathLike | ModelSource, runtime: str = "auto", **options: Any) -> Predictor:
        """A predictor for a run directory or a ``.keras`` file, with the run's class names.

        ``path`` may be a :class:`~csa_keras.inference.loading.ModelSource` a
        command resolved already: it is loaded as it is, not resolved again.

        ``runtime``: ``keras``, ``litert`` (the model's TFLite artifact, a
        ``.tflite`` file given here too) or ``auto``, Keras where TensorFlow is
        installed (:func:`~csa_keras.inference.litert.choose_runtime`).
        ``options`` go to :class:`Predictor`. Every problem with the model
        file is a one-line ``ValueError``.
        """
        from csa_keras.inference.litert import choose_runtime, load_artifact

        if choose_runtime(runtime) == "litert":
            model = load_artifact(path.path if isinstance(path, ModelSource) else path)
            if options.get("grey") is None and model.channels == 1:
                options["grey"] = True
            predictor = cls(model, source=str(model.path), **options)
            if options.get("class_names") is None:
                predictor.class_names = model.class_names
            return predictor
        source = ModelSource.resolve(path)
        model_path = source.path
        if options.get("grey") is None and trained_channels(model_path) == 1:
            options["grey"] = True
        predictor = cls(load_model(source), source=str(model_path), **options)
        if options.get("class_names") is None:
            predictor.class_names = class_names_for(model_path, predictor.num_classes)
        return predictor

    @classmethod
    def pretrained(cls, name: str | None = None, **options: Any) -> Predictor:
        """A pretrained model installed with the package, by name (``csa_fer2013``,
        ``vrn_fer2013``; :func:`~csa_keras.inference.loading.pretrained_names`); without one, the
        default (:data:`~csa_keras.inference.loading.DEFAULT_MODEL`). ``options`` (``runtime``
        among them) go to :meth:`from_run`."""
        from csa_keras.inference.litert import choose_runtime, pretrained_folder

        if name is not None and choose_runtime(options.get("runtime", "auto")) == "litert":
            return cls.from_run(pretrained_folder(name), **options)
        return cls.from_run(pretrained_run(name), **options)

    # ----------------------------------------------------------------- faces

    @property
    def detector(self) -> FaceDetector:
        """The Viola-Jones cascade of :attr:`settings`, loaded on first use."""
        if self._finder.detector is None:
            self._finder.detector = FaceDetector.from_settings(self.settings)
        return self._finder.detector

    def _analyse(self, rgb: np.ndarray, original_shape: tuple[int, int],
                 base: dict) -> tuple[list[dict], list[np.ndarray]]:
        """The records of one decoded image (predictions still empty) and its faces to classify."""
        height, width = rgb.shape[:2]
        grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        crop, boxes = locate_faces(grey, self.settings, detector=self._finder, every=True, source=base["source"])
        if not boxes:
            return [make_record(**base, status="no_face")], []
        records, crops = [], []
        sy, sx = original_shape[0] / height, original_shape[1] / width
        for x, y, w, h in boxes:
            face = face_in_box(rgb, (x, y, w, h), self.settings, grey)
            if (sy, sx) != (1.0, 1.0):
                x, y, w, h = round(x * sx), round(y * sy), round(w * sx), round(h * sy)
            records.append(make_record(**base, face=len(records), status="ok", crop=crop,
                                       box=[int(x), int(y), int(w), int(h)]))
            crops.append(face)
        return records, crops

    # ----------------------------------------------------------------- model

    def classify_batch(self, x: np.ndarray) -> np.ndarray:
        """Class probabilities ``(n, K)`` of one batch of model-ready inputs: one model call."""
        if self._task is None:
            return as_probabilities(self.model.predict_on_batch(x))
        return class_probabilities(self._task, self.model.predict_on_batch(x), **self.options)

    def classify(self, faces: np.ndarray) -> np.ndarray:
        """Class probabilities ``(N, K)`` of faces already cropped to the model's input size.

        ``faces``: ``uint8`` (scaled here) or float in [0, 1], ``(N, S, S)``,
        ``(N, S, S, 1)`` or ``(N, S, S, 3)``; grey faces are repeated to a
        three-channel model's input. Each row sums to 1.
        """
        faces = np.asarray(faces)
        if faces.ndim == 3:
            faces = faces[..., None]
        size = self.settings.size
        if faces.ndim != 4 or faces.shape[1:3] != (size, size) or faces.shape[3] not in (1, self.channels):
            raise ValueError(f"faces must be (N, {size}, {size}, {self.channels}). Received: faces with "
                             f"shape={faces.shape}")
        x = faces.astype(np.float32) / 255.0 if faces.dtype == np.uint8 else faces.astype(np.float32)
        if x.shape[3] != self.channels:
            x = np.repeat(x, self.channels, axis=3)
        parts = [self.classify_batch(x[i:i + self.batch_size]) for i in range(0, len(x), self.batch_size)]
        return np.concatenate(parts) if parts else np.zeros((0, self.num_classes))

    def _fill(self, record: dict, probabilities: np.ndarray) -> None:
        best = int(np.argmax(probabilities))
        record.update(label=self.class_names[best], score=float(probabilities[best]),
                      probabilities={n: float(p) for n, p in zip(self.class_names, probabilities)})

    def _flush(self, pending: list[_Entry], annotator: Annotator | None) -> Iterator[dict]:
        faces = [face for entry in pending for face in entry.faces]
        if faces:
            rows = iter(self.classify(np.stack(faces)))
            for entry in pending:
                for record in entry.records:
                    if record["status"] == "ok":
                        self._fill(record, next(rows))
        for entry in pending:
            if annotator is not None and entry.image is not None:
                annotated = annotator.write(entry.item, entry.image, entry.records, entry.original_shape)
                if annotated is None:
                    note_skipped_annotation(entry.records, annotator.skipped[str(entry.item.path)])
            yield from entry.records

    def _batched(self, entries: Iterable[_Entry], annotator: Annotator | None) -> Iterator[dict]:
        """Classify the faces of ``entries`` in batches across images; records in input order."""
        pending: list[_Entry] = []
        n_faces = 0
        for entry in entries:
            pending.append(entry)
            n_faces += len(entry.faces)
            if n_faces >= self.batch_size or len(pending) >= self.batch_size:
                yield from self._flush(pending, annotator)
                pending, n_faces = [], 0
        yield from self._flush(pending, annotator)

    # ----------------------------------------------------------------- public

    def predict(self, image: str | os.PathLike | bytes | np.ndarray) -> list[dict]:
        """The records of one image: a path, encoded bytes, or a ``uint8`` grey / RGB array.

        An image without a face gives one ``no_face`` record (unless
        ``no_face`` says otherwise); a file that cannot be decoded gives one
        ``error`` record. Videos go through :meth:`predict_paths`.
        """
        if isinstance(image, np.ndarray):
            rgb = as_uint8_image(image)
            rgb = cv2.cvtColor(rgb, cv2.COLOR_GRAY2RGB) if rgb.ndim == 2 else rgb
            original, source = rgb.shape[:2], "<array>"
            rgb = reduce_image(rgb, self.settings.max_side)
        else:
            if isinstance(image, (bytes, bytearray, memoryview)):
                source = "<bytes>"
            else:
                source = str(image)
                if kind_of(image) == "video":
                    raise ValueError(f"image {image} is a video: predict on it with predict_paths")
            try:
                rgb, original = read_image(image, self.settings.max_side)
            except ImageDecodeError as error:
                return [make_record(source, status="error", error=error_reason(error))]
        return self.records_of(rgb, original, source)

    def records_of(self, rgb: np.ndarray, original_shape: tuple[int, int], source: str,
                   frame: int | None = None, time_s: float | None = None) -> list[dict]:
        """The records of one decoded RGB image (at most ``max_side`` a side) of ``original_shape``, classified now."""
        base = {"source": source, "frame": frame, "time_s": time_s}
        records, faces = self._analyse(rgb, original_shape, base)
        return list(self._flush([_Entry(records, faces)], None))

    def stream(self, source: int | str | os.PathLike, smooth: int = 5, every: int = 1,
               max_frames: int | None = None, annotate: str | os.PathLike | None = None) -> FrameStream:
        """Classify a camera index, video file or stream URL frame by frame (:mod:`~csa_keras.inference.stream`).

        Yields a :class:`~csa_keras.inference.stream.StreamFrame` per sampled
        frame (every ``every``-th, at most ``max_frames``) with each face's
        probabilities averaged over the last ``smooth`` frames; ``annotate``:
        a folder for the annotated video and timeline of the smoothed records.
        """
        return FrameStream(self, source, smooth, every, max_frames, annotate)

    def predict_paths(self, inputs: str | os.PathLike | Iterable[str | os.PathLike], every: int = 1,
                      progress: bool = True, annotate: str | os.PathLike | None = None) -> Iterator[dict]:
        """Records for image files, folders (recursive) and videos (every ``every``-th frame).

        The inputs are expanded and checked at once
        (:func:`~csa_keras.inference.inputs.collect_inputs`: a missing input or
        an empty folder is a ``ValueError`` before any work); the records then
        stream out in input order as their batches are classified. An
        unreadable image or video gives an ``error`` record and the rest goes
        on. ``progress`` shows a tqdm bar on stderr (images and frames)
        unless the input is a single image. ``annotate``: a folder receiving
        a drawn copy of every image (``<stem>_annotated<suffix>``) and, for
        every video, an annotated video with a timeline of the probabilities
        (:class:`~csa_keras.inference.annotate.Annotator`), at the decoded
        size (at most ``max_side`` pixels a side); stopping early (Ctrl-C, an
        error, records left unread) drops the video in progress. A folder
        that is an input, lies inside an input folder or holds an input is a
        ``ValueError`` before any work (:func:`~csa_keras.utils.paths.check_outputs`);
        a copy that cannot be written is skipped, its reason in the records'
        ``error``.
        """
        if not isinstance(every, int) or isinstance(every, bool) or every < 1:
            raise ValueError(f"every must be a positive integer. Received: every={every!r}")
        inputs = [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs)
        items = collect_inputs(inputs)
        if annotate is not None:
            given = [raw for raw in inputs if not isinstance(raw, InputFile)] + [item.path for item in items]
            check_outputs({"annotate": annotate}, {"inputs": given}, folders=("annotate",))
        annotator = None if annotate is None else Annotator(annotate, self.class_names, every)
        show = progress and not (len(items) == 1 and items[0].kind == "image")
        return self._generate(items, every, show, annotator)

    def _generate(self, items: list[InputFile], every: int, progress: bool,
                  annotator: Annotator | None) -> Iterator[dict]:
        total = (sum(1 if item.kind == "image" else frame_estimate(item.path, every) for item in items)
                 if progress else None)
        with (tqdm(total=total, desc="predict", unit="img", disable=not progress, leave=False) as bar,
              annotator or contextlib.nullcontext()):
            entries = self._entries(items, every, bar, annotator is not None)
            yield from self._batched(prefetch(entries, self.prefetch), annotator)

    def _entries(self, items: list[InputFile], every: int, bar, keep_images: bool) -> Iterator[_Entry]:
        max_side = self.settings.max_side
        for item in items:
            source = str(item.path)
            if item.kind == "image":
                try:
                    rgb, original = read_image(item.path, max_side)
                    records, faces = self._analyse(rgb, original, {"source": source})
                except NoFaceError:
                    raise
                except Exception as error:
                    yield _Entry([make_record(source, status="error", error=error_reason(error))], [])
                else:
                    yield _Entry(records, faces, item, rgb if keep_images else None, original)
                bar.update(1)
                continue
            frames = video_frames(item.path, every, max_side)
            while True:
                try:
                    index, seconds, rgb, original = next(frames)
                except StopIteration:
                    break
                except Exception as error:
                    yield _Entry([make_record(source, status="error", error=error_reason(error))], [])
                    bar.update(1)
                    break
                records, faces = self._analyse(rgb, original, {"source": source, "frame": index, "time_s": seconds})
                yield _Entry(records, faces, item, rgb if keep_images else None, original)
                bar.update(1)
