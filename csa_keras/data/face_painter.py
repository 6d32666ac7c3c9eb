"""Synthetic expression faces drawn with OpenCV primitives, for the built-in dataset.

:mod:`csa_keras.data.synthetic` builds the dataset from these faces. Each
class is told apart by the facial geometry that the expression changes (the
action units that CK+ codes):

==========  ==============================================================
class       cues
==========  ==============================================================
anger       brows lowered and pulled together into a V, eyes narrowed,
            lips pressed into a tight thick line
contempt    one lip corner raised and tightened (a unilateral smirk with a
            dimple), the rest of the face near neutral
disgust     nose wrinkle lines, upper lip raised (an angular upper lip),
            brows lowered, eyes narrowed
fear        brows raised and drawn together, eyes wide open, mouth open and
            stretched sideways
happiness   lip corners pulled up into a smile showing teeth, cheek folds,
            eyes narrowed by the raised cheeks
neutral     level brows, relaxed eyes, closed straight mouth
sadness     inner brow ends raised, upper lids drooping, lip corners down
surprise    brows raised high and arched, eyes wide open, jaw dropped into
            an open "O"
==========  ==============================================================

Identity (one random draw per subject) sets face width and height, skin
tone, hair band, eye spacing, the heights of brows, eyes, nose and mouth,
mouth width and stroke weight. Each image adds position jitter, scale, a
small rotation, a lighting gradient, exposure, contrast, noise and the
expression's intensity. Exposure and contrast are drawn per image
independently of the class and imposed after drawing (the image is shifted
and scaled to a random target mean and standard deviation), so neither mean
brightness nor global contrast predicts the class: a model has to look at the
geometry.

Faces are drawn at four times the output size and reduced with
``INTER_AREA`` (anti-aliasing).
"""
from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from csa_keras.data.dataset import CANONICAL_CLASSES, canonical_class

SUPERSAMPLE = 4
"""Faces are drawn at this multiple of the output size, then reduced with ``INTER_AREA``."""


@dataclasses.dataclass(frozen=True)
class Expression:
    """Geometric deviations of one expression from neutral, at full intensity.

    Lengths are fractions of the canvas side. ``brow_raise`` lifts both brows,
    ``brow_inner`` lifts their inner ends only (negative: a V), ``brow_pinch``
    draws the inner ends towards the midline, ``brow_arch`` bends them.
    ``eye_open`` scales the eye opening (1 neutral). ``mouth_curve`` lifts
    (positive) or drops (negative) both lip corners, ``mouth_side`` lifts the
    right corner only, ``mouth_open`` opens the jaw, ``mouth_width`` scales the
    mouth, ``lip_press`` thickens a closed mouth, ``upper_lip`` raises the
    centre of the upper lip, ``teeth`` shows teeth in an open mouth,
    ``nose_wrinkle`` and ``cheek_folds`` draw those lines.
    """

    brow_raise: float = 0.0
    brow_inner: float = 0.0
    brow_pinch: float = 0.0
    brow_arch: float = 0.0
    eye_open: float = 1.0
    mouth_curve: float = 0.0
    mouth_side: float = 0.0
    mouth_open: float = 0.0
    mouth_width: float = 1.0
    lip_press: float = 0.0
    upper_lip: float = 0.0
    teeth: float = 0.0
    nose_wrinkle: float = 0.0
    cheek_folds: float = 0.0

    def towards(self, intensity: float) -> Expression:
        """The expression at ``intensity`` in [0, 1] (0 neutral, 1 full)."""
        neutral = Expression()
        return Expression(**{
            f.name: getattr(neutral, f.name) + intensity * (getattr(self, f.name) - getattr(neutral, f.name))
            for f in dataclasses.fields(self)
        })


EXPRESSIONS: dict[str, Expression] = {
    "neutral": Expression(),
    "anger": Expression(brow_raise=-0.030, brow_inner=-0.055, brow_pinch=0.030, eye_open=0.55,
                        lip_press=1.0, mouth_width=0.80, mouth_curve=-0.010),
    "contempt": Expression(mouth_side=0.060, eye_open=0.90, brow_inner=-0.005),
    "disgust": Expression(brow_raise=-0.020, brow_inner=-0.025, brow_pinch=0.015, eye_open=0.60,
                          nose_wrinkle=1.0, upper_lip=0.045, mouth_curve=-0.025, mouth_open=0.020),
    "fear": Expression(brow_raise=0.040, brow_inner=0.030, brow_pinch=0.020, eye_open=1.55,
                       mouth_open=0.050, mouth_width=1.25, mouth_curve=-0.010),
    "happiness": Expression(mouth_curve=0.055, mouth_open=0.045, mouth_width=1.20, teeth=1.0,
                            eye_open=0.70, cheek_folds=1.0),
    "sadness": Expression(brow_inner=0.050, brow_raise=0.005, eye_open=0.75, mouth_curve=-0.050,
                          mouth_width=0.90),
    "surprise": Expression(brow_raise=0.065, brow_arch=0.030, eye_open=1.65, mouth_open=0.130,
                           mouth_width=0.65),
}


@dataclasses.dataclass(frozen=True)
class Identity:
    """One synthetic subject: face shape, tone and feature layout.

    Lengths are fractions of the canvas side; tones are grey levels of the
    neutral rendering (exposure and contrast are re-drawn per image).
    """

    face_w: float
    face_h: float
    face_y: float
    skin: float
    background: float
    hair: float
    hair_line: float
    eye_y: float
    eye_dx: float
    eye_w: float
    eye_h: float
    iris: float
    brow_gap: float
    brow_thick: float
    nose_y: float
    nose_w: float
    mouth_y: float
    mouth_w: float
    lip: float
    stroke: float
    tint: tuple[float, float, float]

    @classmethod
    def random(cls, rng: np.random.Generator) -> Identity:
        """A random subject; every field is drawn from ``rng``."""
        u = rng.uniform
        skin = u(120, 215)
        return cls(
            face_w=u(0.44, 0.52), face_h=u(0.58, 0.68), face_y=u(0.57, 0.62),
            skin=skin, background=float(np.clip(skin + rng.choice([-1, 1]) * u(40, 90), 10, 245)),
            hair=u(15, 90) if rng.random() < 0.75 else u(170, 235), hair_line=u(0.10, 0.16),
            eye_y=u(0.36, 0.40), eye_dx=u(0.17, 0.21), eye_w=u(0.080, 0.095), eye_h=u(0.030, 0.038),
            iris=u(20, 80), brow_gap=u(0.085, 0.100), brow_thick=u(0.020, 0.028),
            nose_y=u(0.57, 0.61), nose_w=u(0.045, 0.060), mouth_y=u(0.76, 0.80), mouth_w=u(0.13, 0.16),
            lip=skin * u(0.40, 0.60), stroke=u(0.85, 1.2), tint=(u(1.02, 1.12), 1.0, u(0.80, 0.95)),
        )


@dataclasses.dataclass(frozen=True)
class Pose:
    """Per-image viewing conditions: position, scale, rotation and light."""

    dx: float = 0.0
    dy: float = 0.0
    scale: float = 1.0
    angle: float = 0.0
    light_dir: float = 0.0
    light: float = 0.0
    mean: float = 128.0
    std: float = 45.0
    noise: float = 3.0
    blur: float = 0.8

    @classmethod
    def random(cls, rng: np.random.Generator) -> Pose:
        u = rng.uniform
        return cls(dx=u(-0.04, 0.04), dy=u(-0.04, 0.04), scale=u(0.92, 1.08), angle=u(-7, 7),
                   light_dir=u(0, 2 * np.pi), light=u(0.0, 0.45), mean=u(80, 170),
                   std=u(32, 58), noise=u(1.0, 6.0), blur=u(0.5, 1.2))


def _pts(points, canvas: int) -> np.ndarray:
    return np.round(np.asarray(points, dtype=np.float64) * canvas).astype(np.int32).reshape(-1, 1, 2)


def _px(value: float, canvas: int) -> int:
    return max(1, round(value * canvas))


def _curve(x0: float, x1: float, y_of_t, n: int = 24) -> np.ndarray:
    t = np.linspace(0.0, 1.0, n)
    return np.stack([x0 + (x1 - x0) * t, y_of_t(t)], axis=1)


def _brows(face: np.ndarray, mask: np.ndarray, idt: Identity, e: Expression, c: int) -> None:
    ink = 0.5 * min(idt.hair, idt.skin * 0.5) + 10
    thick = _px(idt.brow_thick * idt.stroke, c)
    for side in (-1, 1):
        inner_x = 0.5 + side * (idt.eye_dx - idt.eye_w * 0.9 - e.brow_pinch)
        outer_x = 0.5 + side * (idt.eye_dx + idt.eye_w + 0.03)
        base = idt.eye_y - idt.brow_gap - e.brow_raise
        inner_y = base - e.brow_inner
        outer_y = base + 0.008

        def y(t, inner_y=inner_y, outer_y=outer_y):
            return inner_y + (outer_y - inner_y) * t - (0.012 + e.brow_arch) * np.sin(np.pi * t)

        line = _curve(inner_x, outer_x, y)
        cv2.polylines(face, [_pts(line, c)], False, ink, thick, cv2.LINE_AA)
        centre = ((inner_x + outer_x) / 2, idt.eye_y - idt.brow_gap)
        cv2.ellipse(mask, (_px(centre[0], c), _px(centre[1], c)),
                    (_px(idt.eye_w + 0.05, c), _px(0.075, c)), 0, 0, 360, 1, -1)


def _eyes(face: np.ndarray, mask: np.ndarray, idt: Identity, e: Expression, c: int) -> None:
    half_h = idt.eye_h * e.eye_open
    for side in (-1, 1):
        centre = (_px(0.5 + side * idt.eye_dx, c), _px(idt.eye_y, c))
        axes = (_px(idt.eye_w, c), _px(half_h, c))
        cv2.ellipse(face, centre, axes, 0, 0, 360, min(255.0, idt.skin + 40), -1, cv2.LINE_AA)
        iris_r = _px(min(idt.eye_h * 0.95, half_h * 1.1), c)
        cv2.circle(face, centre, iris_r, idt.iris, -1, cv2.LINE_AA)
        cv2.circle(face, centre, max(1, iris_r // 2), 10, -1, cv2.LINE_AA)
        lid = idt.hair * 0.4 + 15
        cv2.ellipse(face, centre, axes, 0, 180, 360, lid, _px(0.010 * idt.stroke, c), cv2.LINE_AA)
        cv2.ellipse(face, centre, axes, 0, 0, 180, idt.skin * 0.6, _px(0.005, c), cv2.LINE_AA)
        if e.eye_open > 1.2:
            crease = (axes[0], int(axes[1] + _px(0.012, c)))
            cv2.ellipse(face, centre, crease, 0, 200, 340, idt.skin * 0.65, _px(0.005, c), cv2.LINE_AA)
        cv2.ellipse(mask, centre, (_px(idt.eye_w + 0.03, c), _px(0.06, c)), 0, 0, 360, 1, -1)


def _nose(face: np.ndarray, mask: np.ndarray, idt: Identity, e: Expression, c: int) -> None:
    shade = idt.skin * 0.62
    w = idt.nose_w
    tip = idt.nose_y
    ridge = np.array([[0.5 - 0.012, idt.eye_y + 0.03], [0.5 - w * 0.55, tip - 0.02], [0.5 - w * 0.25, tip]])
    cv2.polylines(face, [_pts(ridge, c)], False, shade, _px(0.007, c), cv2.LINE_AA)
    for side in (-1, 1):
        cv2.ellipse(face, (_px(0.5 + side * w * 0.45, c), _px(tip, c)), (_px(w * 0.30, c), _px(0.011, c)),
                    0, 0, 360, idt.skin * 0.45, -1, cv2.LINE_AA)
    if e.nose_wrinkle > 0:
        k = e.nose_wrinkle
        top = idt.eye_y + 0.02
        for i in range(3):
            y = top + 0.022 * i
            for side in (-1, 1):
                seg = np.array([[0.5 + side * 0.012, y], [0.5 + side * (0.012 + 0.030 * k), y + 0.012]])
                cv2.polylines(face, [_pts(seg, c)], False, idt.skin * 0.55, _px(0.006, c), cv2.LINE_AA)
        cv2.line(face, (_px(0.5 - 0.02, c), _px(top - 0.012, c)), (_px(0.5 + 0.02, c), _px(top - 0.012, c)),
                 idt.skin * 0.55, _px(0.006, c), cv2.LINE_AA)
    cv2.ellipse(mask, (_px(0.5, c), _px((idt.eye_y + tip) / 2 + 0.01, c)),
                (_px(0.055, c), _px((tip - idt.eye_y) / 2 + 0.02, c)), 0, 0, 360, 1, -1)


def _mouth(face: np.ndarray, mask: np.ndarray, idt: Identity, e: Expression, c: int) -> None:
    hw = idt.mouth_w * e.mouth_width
    y0 = idt.mouth_y
    x0, x1 = 0.5 - hw, 0.5 + hw

    def lip_line(t):
        s = 2 * t - 1
        return y0 - e.mouth_curve * s ** 2 - e.mouth_side * np.clip(s, 0, None) ** 2

    thick = _px((0.010 + 0.012 * e.lip_press) * idt.stroke, c)
    if e.mouth_open > 0.008:
        upper = _curve(x0, x1, lambda t: lip_line(t) - e.mouth_open * 0.25 * np.sin(np.pi * t)
                       - e.upper_lip * np.clip(1 - np.abs(2 * t - 1) * 1.6, 0, None))
        lower = _curve(x1, x0, lambda t: lip_line(1 - t) + e.mouth_open * 0.75 * np.sin(np.pi * t))
        outline = np.concatenate([upper, lower])
        cv2.fillPoly(face, [_pts(outline, c)], 25, cv2.LINE_AA)
        if e.teeth > 0:
            band = np.concatenate([upper, _curve(x1, x0, lambda t: lip_line(1 - t) + e.mouth_open * 0.3
                                                 * np.sin(np.pi * t))])
            cv2.fillPoly(face, [_pts(band, c)], 235, cv2.LINE_AA)
        cv2.polylines(face, [_pts(outline, c)], True, idt.lip, thick, cv2.LINE_AA)
    else:
        line = _curve(x0, x1, lip_line)
        cv2.polylines(face, [_pts(line, c)], False, idt.lip * 0.6, thick, cv2.LINE_AA)
        under = _curve(x0 + hw * 0.5, x1 - hw * 0.5, lambda t: lip_line(0.25 + t / 2) + 0.022)
        cv2.polylines(face, [_pts(under, c)], False, idt.skin * 0.8, _px(0.006, c), cv2.LINE_AA)
    if e.mouth_side > 0.01:
        corner = (_px(x1 + 0.008, c), _px(lip_line(1.0) - 0.004, c))
        cv2.circle(face, corner, _px(0.009, c), idt.skin * 0.5, -1, cv2.LINE_AA)
    if e.cheek_folds > 0:
        for side in (-1, 1):
            fold = np.array([[0.5 + side * (idt.nose_w + 0.03), idt.nose_y - 0.005],
                             [0.5 + side * (hw + 0.04), y0 - 0.035],
                             [0.5 + side * (hw + 0.035), y0 + 0.01]])
            cv2.polylines(face, [_pts(fold, c)], False, idt.skin * 0.7, _px(0.006, c), cv2.LINE_AA)
    cv2.ellipse(mask, (_px(0.5, c), _px(y0 + 0.01, c)), (_px(idt.mouth_w * 1.3 + 0.045, c), _px(0.1, c)),
                0, 0, 360, 1, -1)


def render_face(
    expression: str,
    identity: Identity,
    pose: Pose,
    intensity: float = 1.0,
    size: int = 48,
    noise_rng: np.random.Generator | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Draw one face; return the ``uint8`` ``(size, size)`` image and its region mask.

    The mask (``bool``, same shape) covers brows, eyes, nose bridge and mouth:
    the regions whose geometry carries the expression. Without ``noise_rng``
    the image has no sensor noise.
    """
    name = canonical_class(expression)
    if name is None or name not in EXPRESSIONS:
        raise ValueError(f"unknown expression {expression!r}: choose from {', '.join(CANONICAL_CLASSES)}")
    if size < 8:
        raise ValueError(f"size must be at least 8 pixels. Received: size={size!r}")
    e = EXPRESSIONS[name].towards(float(np.clip(intensity, 0.0, 1.0)))
    c = size * SUPERSAMPLE
    face = np.full((c, c), round(identity.background), np.uint8)
    mask = np.zeros((c, c), np.uint8)
    fx, fy = _px(0.5, c), _px(identity.face_y, c)
    face_axes = (_px(identity.face_w, c), _px(identity.face_h, c))
    cv2.ellipse(face, (fx, _px(identity.face_y + 0.35, c)), (_px(identity.face_w * 0.55, c), _px(0.3, c)),
                0, 0, 360, identity.skin * 0.85, -1, cv2.LINE_AA)
    cv2.ellipse(face, (fx, _px(identity.face_y - 0.03, c)),
                (face_axes[0] + _px(0.035, c), face_axes[1] + _px(0.035, c)), 0, 0, 360,
                identity.hair, -1, cv2.LINE_AA)
    cv2.ellipse(face, (fx, fy), face_axes, 0, 0, 360, identity.skin, -1, cv2.LINE_AA)
    top = identity.face_y - identity.face_h
    cv2.ellipse(face, (fx, _px(top, c)), (_px(identity.face_w * 0.98, c), _px(identity.hair_line, c)),
                0, 0, 360, identity.hair, -1, cv2.LINE_AA)

    _brows(face, mask, identity, e, c)
    _eyes(face, mask, identity, e, c)
    _nose(face, mask, identity, e, c)
    _mouth(face, mask, identity, e, c)

    matrix = cv2.getRotationMatrix2D((c / 2, c / 2), pose.angle, pose.scale)
    matrix[:, 2] += (pose.dx * c, pose.dy * c)
    face = cv2.warpAffine(face, matrix, (c, c), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    face = cv2.resize(face, (size, size), interpolation=cv2.INTER_AREA).astype(np.float32)
    small = matrix.copy()
    small[:, 2] /= SUPERSAMPLE
    mask = cv2.resize(mask.astype(np.float32), (size, size), interpolation=cv2.INTER_AREA)
    region = cv2.warpAffine(mask, small, (size, size), flags=cv2.INTER_LINEAR, borderValue=0) >= 0.5

    ramp = np.linspace(-0.5, 0.5, size, dtype=np.float32)
    face *= 1.0 + pose.light * (np.cos(pose.light_dir) * ramp[None, :] + np.sin(pose.light_dir) * ramp[:, None])
    face = cv2.GaussianBlur(face, (0, 0), pose.blur)
    face = (face - face.mean()) / max(float(face.std()), 1e-3) * pose.std + pose.mean
    if noise_rng is not None:
        face += noise_rng.normal(0.0, pose.noise, face.shape).astype(np.float32)
    image = np.clip(np.round(face), 0, 255).astype(np.uint8)
    return image, region


def random_face(rng: np.random.Generator, identity: Identity, class_name: str, size: int):
    """A face of ``class_name`` for ``identity`` with pose, intensity and noise drawn from ``rng``."""
    pose = Pose.random(rng)
    intensity = rng.uniform(0.6, 1.0)
    return render_face(class_name, identity, pose, intensity=intensity, size=size, noise_rng=rng)


def draw_face(expression: str, rng: np.random.Generator, size: int = 48,
              identity: Identity | None = None, return_mask: bool = False):
    """One random face showing ``expression``: a ``uint8`` ``(size, size)`` image.

    Identity (unless given), pose, lighting, intensity and noise are drawn
    from ``rng``. With ``return_mask=True`` returns ``(image, mask)`` where
    ``mask`` is the boolean map of the expressive regions.
    """
    name = canonical_class(expression)
    if name is None:
        raise ValueError(f"unknown expression {expression!r}: choose from {', '.join(CANONICAL_CLASSES)}")
    if identity is None:
        identity = Identity.random(rng)
    image, mask = random_face(rng, identity, name, size)
    return (image, mask) if return_mask else image
