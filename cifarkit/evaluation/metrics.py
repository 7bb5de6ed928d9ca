"""Per-run evaluation from stored logits: metrics, calibration, test-time augmentation, failures.

Everything here is a pure function of arrays (``logits``/``probs`` of shape ``(N, C)`` and
integer ``labels`` of shape ``(N,)``), so a chapter, the ``report`` command and the tests
call the same code. Across-seed statistics live in :mod:`cifarkit.evaluation.stats`; figures in
:mod:`cifarkit.plots`; :mod:`cifarkit.evaluation.report` puts them together for a set of runs.

* metrics: :func:`accuracy`, :func:`top_k_accuracy`, :func:`nll`, :func:`per_class_table`
  (precision/recall/F1/support), :func:`confusion`, :func:`top_confusions`,
  :func:`confusion_pairs` — scikit-learn underneath;
* calibration: :func:`reliability_table`, :func:`expected_calibration_error` (15 equal-width
  bins), :func:`fit_temperature` (on validation logits only) and :func:`calibrate`;
* test-time augmentation: :func:`tta_views`, :func:`tta_evaluate`;
* failure analysis: :func:`confident_mistakes`, :func:`mistakes_by_class`,
  :func:`pair_mistakes`;
* all of it at once: :func:`evaluate_logits` → :class:`RunEvaluation`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import log_softmax
from scipy.special import softmax as _softmax

DEFAULT_BINS = 15
TOP_K = 5
TEMPERATURE_BOUNDS = (0.05, 20.0)  # search range of the temperature (log-spaced)

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- basics


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Class probabilities (float64) of ``logits / temperature``."""
    return _softmax(np.asarray(logits, np.float64) / temperature, axis=1)


def _check(probs: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    probs = np.asarray(probs, np.float64)
    labels = np.asarray(labels).astype(np.int64)
    if probs.ndim != 2 or labels.shape != (probs.shape[0],):
        raise ValueError(
            f"expected scores (N, C) and labels (N,), got {probs.shape} and {labels.shape}"
        )
    if labels.size and (labels.min() < 0 or labels.max() >= probs.shape[1]):
        raise ValueError(f"labels outside 0..{probs.shape[1] - 1}")
    return probs, labels


def accuracy(probs: np.ndarray, labels: np.ndarray) -> float:
    """Share of examples whose highest score is the label (probabilities or logits alike)."""
    from sklearn.metrics import accuracy_score

    probs, labels = _check(probs, labels)
    return float(accuracy_score(labels, probs.argmax(axis=1)))


def top_k_accuracy(probs: np.ndarray, labels: np.ndarray, k: int = TOP_K) -> float:
    """Share of examples whose label is among the ``k`` highest scores."""
    from sklearn.metrics import top_k_accuracy_score

    probs, labels = _check(probs, labels)
    return float(top_k_accuracy_score(labels, probs, k=k, labels=np.arange(probs.shape[1])))


def nll(probs: np.ndarray, labels: np.ndarray) -> float:
    """Mean negative log-likelihood (nats) of the labels under ``probs`` (scikit-learn ``log_loss``)."""
    from sklearn.metrics import log_loss

    probs, labels = _check(probs, labels)
    return float(log_loss(labels, probs, labels=np.arange(probs.shape[1])))


def per_class_table(
    probs: np.ndarray, labels: np.ndarray, class_names: Sequence[str]
) -> pd.DataFrame:
    """Precision, recall (= per-class accuracy), F1 and support of each class.

    A class never predicted has precision 0 (scikit-learn's ``zero_division=0``).
    """
    from sklearn.metrics import precision_recall_fscore_support

    probs, labels = _check(probs, labels)
    precision, recall, f1, support = precision_recall_fscore_support(
        labels, probs.argmax(axis=1), labels=np.arange(len(class_names)), zero_division=0
    )
    return pd.DataFrame(
        {"precision": precision, "recall": recall, "f1": f1, "support": support},
        index=pd.Index(list(class_names), name="class"),
    )


def macro_f1(probs: np.ndarray, labels: np.ndarray) -> float:
    """Unweighted mean of the per-class F1 scores."""
    from sklearn.metrics import f1_score

    probs, labels = _check(probs, labels)
    return float(
        f1_score(
            labels,
            probs.argmax(axis=1),
            labels=np.arange(probs.shape[1]),
            average="macro",
            zero_division=0,
        )
    )


def confusion(probs: np.ndarray, labels: np.ndarray, *, normalise: bool = False) -> np.ndarray:
    """Confusion matrix, rows = true class, columns = predicted; ``normalise`` divides each row
    by its total (a class absent from ``labels`` gets a row of zeros)."""
    from sklearn.metrics import confusion_matrix

    probs, labels = _check(probs, labels)
    return confusion_matrix(
        labels,
        probs.argmax(axis=1),
        labels=np.arange(probs.shape[1]),
        normalize="true" if normalise else None,
    )


def normalise_rows(counts: np.ndarray) -> np.ndarray:
    """Row-normalise a confusion-count matrix (e.g. counts summed over seeds); empty rows stay 0."""
    counts = np.asarray(counts, np.float64)
    totals = counts.sum(axis=1, keepdims=True)
    return np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)


def top_confusions(counts: np.ndarray, class_names: Sequence[str], n: int = 10) -> pd.DataFrame:
    """The ``n`` largest off-diagonal cells: ``true``, ``predicted``, ``count`` and ``rate``
    (share of the true class's examples). Ties go to the lower (true, predicted) index."""
    counts = np.asarray(counts)
    rates = normalise_rows(counts)
    rows = [
        (i, j, int(counts[i, j]), float(rates[i, j]))
        for i in range(len(counts))
        for j in range(len(counts))
        if i != j and counts[i, j] > 0
    ]
    rows.sort(key=lambda r: (-r[2], r[0], r[1]))
    return pd.DataFrame(
        [
            {
                "true": class_names[i],
                "predicted": class_names[j],
                "true_index": i,
                "predicted_index": j,
                "count": c,
                "rate": r,
            }
            for i, j, c, r in rows[:n]
        ],
        columns=["true", "predicted", "true_index", "predicted_index", "count", "rate"],
    )


def confusion_pairs(counts: np.ndarray, class_names: Sequence[str], n: int = 10) -> pd.DataFrame:
    """The ``n`` class pairs confused most in either direction (e.g. cat↔dog): ``a``, ``b``,
    ``a_as_b``, ``b_as_a`` and their sum ``count``. Ties go to the lower (a, b) index."""
    counts = np.asarray(counts)
    k = len(counts)
    rows = [
        (i, j, int(counts[i, j]), int(counts[j, i]))
        for i in range(k)
        for j in range(i + 1, k)
        if counts[i, j] + counts[j, i] > 0
    ]
    rows.sort(key=lambda r: (-(r[2] + r[3]), r[0], r[1]))
    return pd.DataFrame(
        [
            {
                "a": class_names[i],
                "b": class_names[j],
                "a_index": i,
                "b_index": j,
                "a_as_b": ab,
                "b_as_a": ba,
                "count": ab + ba,
            }
            for i, j, ab, ba in rows[:n]
        ],
        columns=["a", "b", "a_index", "b_index", "a_as_b", "b_as_a", "count"],
    )


# --------------------------------------------------------------------------- calibration


def reliability_table(
    probs: np.ndarray, labels: np.ndarray, n_bins: int = DEFAULT_BINS
) -> pd.DataFrame:
    """Per confidence bin: ``low``, ``high``, ``count``, mean ``confidence``, ``accuracy``, ``gap``.

    Confidence is the top probability; bins are ``n_bins`` equal-width intervals
    ``(low, high]`` over [0, 1] (a confidence of exactly 0 falls in the first). Empty bins
    have NaN confidence and accuracy.
    """
    # Written here rather than taken from a library: scikit-learn's calibration_curve is for
    # binary problems and drops empty bins, and the top-label binning of Guo et al. (2017)
    # that ECE is defined on is a few lines of numpy.
    probs, labels = _check(probs, labels)
    confidence = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == labels).astype(np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    which = np.digitize(confidence, edges[1:-1], right=True)  # bin i is (edges[i], edges[i+1]]
    count = np.bincount(which, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(which, weights=confidence, minlength=n_bins) / count
        mean_acc = np.bincount(which, weights=correct, minlength=n_bins) / count
    return pd.DataFrame(
        {
            "low": edges[:-1],
            "high": edges[1:],
            "count": count,
            "confidence": mean_conf,
            "accuracy": mean_acc,
            "gap": mean_conf - mean_acc,
        }
    )


def expected_calibration_error(
    probs: np.ndarray, labels: np.ndarray, n_bins: int = DEFAULT_BINS
) -> float:
    """ECE (Guo et al. 2017): the count-weighted mean of ``abs(confidence - accuracy)`` over
    equal-width bins."""
    table = reliability_table(probs, labels, n_bins)
    used = table["count"] > 0
    if not used.any():
        return float("nan")
    weights = table.loc[used, "count"] / table.loc[used, "count"].sum()
    return float((weights * table.loc[used, "gap"].abs()).sum())


def _nll_at(logits: np.ndarray, labels: np.ndarray, temperature: float) -> float:
    # Exact log-softmax NLL (no clipping) so the optimiser sees a smooth objective.
    return float(-log_softmax(logits / temperature, axis=1)[np.arange(len(labels)), labels].mean())


def temperature_at_bound(
    temperature: float, bounds: tuple[float, float] = TEMPERATURE_BOUNDS, rtol: float = 1e-3
) -> bool:
    """True when a fitted temperature sits on (within ``rtol`` of) an end of its search range:
    the NLL optimum may then lie beyond it, and the figure is a bound, not a fit."""
    low, high = bounds
    return temperature <= low * (1 + rtol) or temperature >= high * (1 - rtol)


def fit_temperature(
    val_logits: np.ndarray, val_labels: np.ndarray, bounds: tuple[float, float] = TEMPERATURE_BOUNDS
) -> float:
    """Temperature ``T`` minimising the validation NLL of ``softmax(logits / T)``
    (Guo et al. 2017), searched over ``log T`` within ``bounds`` with a bounded scalar minimiser.

    Fit it on validation logits only: the test set must not choose ``T``. When the result
    lies on a bound (:func:`temperature_at_bound`) a warning is logged, and
    :func:`calibrate` records it in :attr:`Calibration.at_bound`.
    """
    from scipy.optimize import minimize_scalar

    logits = np.asarray(val_logits, np.float64)
    labels = np.asarray(val_labels).astype(np.int64)
    if len(labels) == 0:
        raise ValueError("no validation examples to fit a temperature on")
    if not 0 < bounds[0] < bounds[1]:
        raise ValueError(
            f"bounds={bounds} must be two increasing positive temperatures, e.g. (0.05, 20.0)"
        )
    # Not scikit-learn's CalibratedClassifierCV(method="temperature"): it wraps an estimator and
    # keeps T in a private calibrator; here the input is a run's stored validation logits, and
    # the report shows T itself and whether it hit a search bound.
    result = minimize_scalar(
        lambda log_t: _nll_at(logits, labels, float(np.exp(log_t))),
        bounds=(np.log(bounds[0]), np.log(bounds[1])),
        method="bounded",
        options={"xatol": 1e-6},
    )
    t = float(np.exp(result.x))
    # A flat objective (e.g. validation logits that are all right) stops the search short of
    # a bound that is as good or better: then the bound is the answer, and it is flagged.
    best = _nll_at(logits, labels, t)
    for bound in bounds:
        if _nll_at(logits, labels, bound) <= best * (1 + 1e-9) + 1e-15:
            t, best = float(bound), _nll_at(logits, labels, bound)
    if temperature_at_bound(t, bounds):
        log.warning(
            "fitted temperature %.3g is at the search bound %s: the validation NLL optimum may lie "
            "beyond it",
            t,
            bounds,
        )
    return t


@dataclass(frozen=True)
class Calibration:
    """Temperature scaling fitted on validation, judged on test.

    ``at_bound`` is True when the fitted temperature sits on an end of ``bounds``: it is
    then a bound of the optimum, not the optimum, and :attr:`note` says so.
    """

    temperature: float
    ece_before: float
    ece_after: float
    nll_before: float
    nll_after: float
    val_nll_before: float
    val_nll_after: float
    n_bins: int = DEFAULT_BINS
    at_bound: bool = False
    bounds: tuple[float, float] = TEMPERATURE_BOUNDS

    @property
    def note(self) -> str:
        """Empty, or the sentence that says the temperature hit its search bound."""
        if not self.at_bound:
            return ""
        return (
            f"the fitted temperature {self.temperature:.3g} is at the end of its search range "
            f"[{self.bounds[0]:g}, {self.bounds[1]:g}]: the validation optimum may lie beyond it"
        )

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            k: float(v) for k, v in self.__dict__.items() if k not in ("at_bound", "bounds")
        }
        out.update(at_bound=bool(self.at_bound), bounds=list(self.bounds), note=self.note)
        return out


def calibrate(
    val_logits: np.ndarray,
    val_labels: np.ndarray,
    test_logits: np.ndarray,
    test_labels: np.ndarray,
    n_bins: int = DEFAULT_BINS,
    bounds: tuple[float, float] = TEMPERATURE_BOUNDS,
) -> Calibration:
    """Fit a temperature on the validation logits, report test ECE and NLL before and after."""
    t = fit_temperature(val_logits, val_labels, bounds)
    before, after = softmax(test_logits), softmax(test_logits, t)
    return Calibration(
        temperature=t,
        ece_before=expected_calibration_error(before, test_labels, n_bins),
        ece_after=expected_calibration_error(after, test_labels, n_bins),
        nll_before=nll(before, test_labels),
        nll_after=nll(after, test_labels),
        val_nll_before=nll(softmax(val_logits), val_labels),
        val_nll_after=nll(softmax(val_logits, t), val_labels),
        n_bins=n_bins,
        at_bound=temperature_at_bound(t, bounds),
        bounds=tuple(bounds),
    )


# --------------------------------------------------------------------------- test-time augmentation


def shift_images(images: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """Translate a batch ``(N, H, W, C)`` by ``(dy, dx)`` pixels, filling by reflection
    (the padding the training crops use)."""
    p = max(abs(dy), abs(dx))
    if p == 0:
        return images
    h, w = images.shape[1:3]
    padded = np.pad(images, ((0, 0), (p, p), (p, p), (0, 0)), mode="reflect")
    return padded[:, p + dy : p + dy + h, p + dx : p + dx + w]


def tta_views(
    images: np.ndarray, *, flip: bool = True, shift: int = 0
) -> dict[str, Callable[[], np.ndarray]]:
    """Named, lazily built views of ``images``: ``identity``, ``flip``, and with ``shift > 0``
    the four ±``shift``-pixel translations of the image and of its mirror."""
    images = np.asarray(images)
    bases = {"identity": lambda: images}
    if flip:
        bases["flip"] = lambda: images[:, :, ::-1]
    views: dict[str, Callable[[], np.ndarray]] = dict(bases)
    if shift:
        for name, base in list(bases.items()):
            for dy, dx in ((-shift, 0), (shift, 0), (0, -shift), (0, shift)):
                views[f"{name}{dy:+d},{dx:+d}"] = lambda base=base, dy=dy, dx=dx: shift_images(
                    base(), dy, dx
                )
    return views


@dataclass(frozen=True)
class TTAResult:
    """Plain (identity view) and test-time-augmented accuracy of one model on one image set."""

    views: tuple[str, ...]
    accuracy: float  # mean of the views' softmax probabilities
    plain_accuracy: float  # identity view alone, same forward pass as the stored logits
    correct: np.ndarray = field(repr=False)
    plain_correct: np.ndarray = field(repr=False)
    probs: np.ndarray = field(repr=False)

    def as_dict(self) -> dict[str, Any]:
        return {
            "views": list(self.views),
            "accuracy": self.accuracy,
            "plain_accuracy": self.plain_accuracy,
        }


def tta_views_text(views: Sequence[str]) -> str:
    """``"2 views (identity, flip), their softmax probabilities averaged"``: the prose that
    names what :func:`tta_evaluate` did."""
    views = list(views)
    return (
        f"{len(views)} view{'s' if len(views) != 1 else ''} ({', '.join(views)}), their softmax "
        "probabilities averaged"
    )


def tta_evaluate(
    predict: Callable[[np.ndarray], np.ndarray],
    images: np.ndarray,
    labels: np.ndarray,
    *,
    flip: bool = True,
    shift: int = 0,
) -> TTAResult:
    """Average the softmax *probabilities* of ``predict(view)`` over :func:`tta_views` (not the
    logits); compare with the identity view alone. ``predict`` returns logits, e.g.
    ``lambda x: predict_logits(model, x)``."""
    labels = np.asarray(labels).astype(np.int64)
    views = tta_views(images, flip=flip, shift=shift)
    total, plain = None, None
    for name, make in views.items():
        probs = softmax(predict(make()))
        if name == "identity":
            plain = probs
        total = probs if total is None else total + probs
    mean = total / len(views)
    correct = mean.argmax(axis=1) == labels
    plain_correct = plain.argmax(axis=1) == labels
    return TTAResult(
        tuple(views),
        float(correct.mean()),
        float(plain_correct.mean()),
        correct,
        plain_correct,
        mean,
    )


# --------------------------------------------------------------------------- failure analysis


def confident_mistakes(
    probs: np.ndarray,
    labels: np.ndarray,
    n: int = 16,
    *,
    true_class: int | None = None,
    predicted_class: int | None = None,
) -> pd.DataFrame:
    """The ``n`` misclassified examples with the highest top probability, most confident first.

    Optionally only those of one true class and/or one predicted class. Index: position in
    the evaluated set (test-set order for stored logits); columns ``true``, ``predicted``,
    ``confidence`` (probability of the prediction) and ``p_true``. Ties go to the lower index.
    """
    probs, labels = _check(probs, labels)
    predicted = probs.argmax(axis=1)
    wrong = predicted != labels
    if true_class is not None:
        wrong &= labels == true_class
    if predicted_class is not None:
        wrong &= predicted == predicted_class
    idx = np.flatnonzero(wrong)
    confidence = probs[idx, predicted[idx]]
    order = idx[np.lexsort((idx, -confidence))][:n]
    return pd.DataFrame(
        {
            "true": labels[order],
            "predicted": predicted[order],
            "confidence": probs[order, predicted[order]],
            "p_true": probs[order, labels[order]],
        },
        index=pd.Index(order, name="index"),
    )


def mistakes_by_class(probs: np.ndarray, labels: np.ndarray, n: int = 6) -> dict[int, pd.DataFrame]:
    """For each true class, its ``n`` most confident mistakes (see :func:`confident_mistakes`)."""
    num_classes = np.asarray(probs).shape[1]
    return {k: confident_mistakes(probs, labels, n, true_class=k) for k in range(num_classes)}


def pair_mistakes(
    probs: np.ndarray, labels: np.ndarray, a: int, b: int, n: int = 16
) -> pd.DataFrame:
    """The ``n`` most confident confusions between classes ``a`` and ``b`` in either direction."""
    both = pd.concat(
        [
            confident_mistakes(probs, labels, n, true_class=a, predicted_class=b),
            confident_mistakes(probs, labels, n, true_class=b, predicted_class=a),
        ]
    )
    if both.empty:
        return both
    keys = np.lexsort((both.index.to_numpy(), -both["confidence"].to_numpy()))
    return both.iloc[keys[:n]]


# --------------------------------------------------------------------------- everything for one run


@dataclass
class RunEvaluation:
    """All per-run figures from one set of test logits (and, for calibration, validation logits)."""

    class_names: tuple[str, ...]
    n: int
    accuracy: float
    top_k: dict[int, float]
    nll: float
    macro_f1: float
    ece: float
    per_class: pd.DataFrame
    confusion: np.ndarray
    confusion_normalised: np.ndarray
    top_confusions: pd.DataFrame
    confusion_pairs: pd.DataFrame
    reliability: pd.DataFrame
    calibration: Calibration | None = None
    reliability_calibrated: pd.DataFrame | None = None
    tta: TTAResult | None = None
    correct: np.ndarray = field(default_factory=lambda: np.zeros(0, bool), repr=False)

    def scalars(self) -> dict[str, float]:
        """Headline numbers by name (what the report aggregates over seeds)."""
        out = {
            "accuracy": self.accuracy,
            "macro_f1": self.macro_f1,
            "nll": self.nll,
            "ece": self.ece,
        }
        out.update({f"top{k}_accuracy": v for k, v in self.top_k.items()})
        if self.calibration is not None:
            out.update(
                temperature=self.calibration.temperature,
                nll_ts=self.calibration.nll_after,
                ece_ts=self.calibration.ece_after,
            )
        if self.tta is not None:
            out["tta_accuracy"] = self.tta.accuracy
        return out

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready summary (tables as records)."""
        return {
            "n": self.n,
            **self.scalars(),
            "per_class": self.per_class.reset_index().to_dict(orient="records"),
            "confusion": self.confusion.tolist(),
            "top_confusions": self.top_confusions.to_dict(orient="records"),
            "confusion_pairs": self.confusion_pairs.to_dict(orient="records"),
            "calibration": self.calibration.as_dict() if self.calibration else None,
            "tta": self.tta.as_dict() if self.tta else None,
        }


def evaluate_logits(
    logits: np.ndarray,
    labels: np.ndarray,
    class_names: Sequence[str],
    *,
    val: tuple[np.ndarray, np.ndarray] | None = None,
    top_k: Sequence[int] = (TOP_K,),
    n_bins: int = DEFAULT_BINS,
    n_confusions: int = 10,
) -> RunEvaluation:
    """Every per-run metric of :mod:`cifarkit.evaluation.metrics` from test ``logits``; with ``val``
    (validation logits and labels) also temperature scaling fitted on validation only."""
    probs, labels = _check(softmax(logits), labels)
    counts = confusion(probs, labels)
    names = tuple(class_names)
    calibration = calibrate(val[0], val[1], logits, labels, n_bins) if val is not None else None
    return RunEvaluation(
        class_names=names,
        n=len(labels),
        accuracy=accuracy(probs, labels),
        top_k={k: top_k_accuracy(probs, labels, k) for k in top_k if k < probs.shape[1]},
        nll=nll(probs, labels),
        macro_f1=macro_f1(probs, labels),
        ece=expected_calibration_error(probs, labels, n_bins),
        per_class=per_class_table(probs, labels, names),
        confusion=counts,
        confusion_normalised=normalise_rows(counts),
        top_confusions=top_confusions(counts, names, n_confusions),
        confusion_pairs=confusion_pairs(counts, names, n_confusions),
        reliability=reliability_table(probs, labels, n_bins),
        calibration=calibration,
        reliability_calibrated=(
            reliability_table(softmax(logits, calibration.temperature), labels, n_bins)
            if calibration
            else None
        ),
        correct=probs.argmax(axis=1) == labels,
    )
