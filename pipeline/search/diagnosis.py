"""Diagnosis between rounds: read learning curves, name what went wrong, reshape the next round.

Signals, from one run's per-epoch logs (`loss`, `val_loss`, `goal` = train goal metric,
`val_goal` = validation goal metric). Only complete runs are read (not one cut short by the
time budget); the train side is the goal metric measured on the training rows at the kept
weights in inference mode, like validation (the running train metric carries dropout and
augmentation noise):

| diagnosis     | fires when                                                            |
|---------------|-----------------------------------------------------------------------|
| divergence    | a loss is NaN/inf, or grows `diverge_factor` x above its first value; |
|               | or at least `failed_share` of the round's trials failed               |
| stalled       | after `stall_epochs` epochs val_loss never fell `stall_min_improvement` |
|               | (relative) below its first value                                      |
| overfitting   | at the best epoch, train goal metric beats validation by `overfit_gap` |
|               | (absolute; relative for rmse/mae)                                     |
| underfitting  | at the best epoch, the train goal metric itself misses the goal       |

What each changes in the next round (see :func:`adjust`):

| diagnosis     | change                                                                |
|---------------|-----------------------------------------------------------------------|
| overfitting   | dropout range moved up; larger L2 penalties; batch norm allowed;       |
|               | a pretrained backbone: half as many layers unfrozen (freeze more);    |
|               | augmentation forced on (when configured for the input kind)           |
| underfitting  | deeper/wider (each family's depth max +1, width choices x2); 2x epochs |
|               | per trial, 1.5x for full training; dropout range capped lower;        |
|               | a pretrained backbone: twice as many layers unfrozen                  |
| divergence    | learning-rate range / 10; batch norm forced on; gradient clipping 1.0  |
| stalled       | learning-rate range x 3; adaptive optimizers only; no saturating       |
|               | activations (sigmoid, tanh)                                           |
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pipeline.config import DiagnosisConfig, GoalConfig
from pipeline.designs import DesignSpace, family_key
from pipeline.models.registry import family
from pipeline.search.records import Diagnosis


@dataclass(frozen=True)
class RoundPlan:
    """What one round searches and how long its runs train."""

    space: DesignSpace
    trial_epochs: int
    full_epochs: int
    clipnorm: float | None = None


def _finite(values) -> bool:
    return all(math.isfinite(v) for v in values)


def diagnose(curves: dict[str, list[float]], goal: GoalConfig, settings: DiagnosisConfig,
             train_score: float | None = None) -> list[Diagnosis]:
    """Diagnoses for one run's learning curves (empty when it looks healthy). `train_score`: the
    goal metric on the training rows at the kept weights in inference mode (no dropout, no
    augmentation), measured like validation; without it the running train metric is read."""
    loss, val_loss = curves.get("loss", []), curves.get("val_loss", [])
    for name, values in (("loss", loss), ("val_loss", val_loss)):
        if values and not _finite(values):
            epoch = next(i + 1 for i, v in enumerate(values) if not math.isfinite(v))
            return [Diagnosis("divergence", f"{name} became {values[epoch - 1]} at epoch {epoch}")]
    if len(loss) >= 2 and max(loss[1:]) > settings.diverge_factor * loss[0]:
        return [Diagnosis("divergence", f"loss grew from {loss[0]:.4g} to {max(loss[1:]):.4g}")]

    found: list[Diagnosis] = []
    if len(val_loss) >= settings.stall_epochs:
        target = val_loss[0] * (1 - settings.stall_min_improvement)
        if min(val_loss[1:]) > target:
            found.append(Diagnosis(
                "stalled", f"val_loss never fell below {target:.4g} in {len(val_loss)} epochs (first {val_loss[0]:.4g})"))

    train, val = curves.get("goal", []), curves.get("val_goal", [])
    if val and (train_score is not None or len(train) == len(val)):
        objective = goal.objective
        best = objective.best_index(val)
        t, v = (train[best] if train_score is None else train_score), val[best]
        gap = objective.lead(t, v)  # how far train is ahead of validation (relative for errors)
        train_name = "train" if train_score is None else "train (inference mode)"
        if gap > settings.overfit_gap:
            found.append(Diagnosis("overfitting", f"at epoch {best + 1} {train_name} {goal.metric} {t:.4f} "
                                                  f"vs validation {v:.4f} (gap {gap:.3f})"))
        if not objective.met(t):
            found.append(Diagnosis("underfitting", f"at epoch {best + 1} {train_name} {goal.metric} {t:.4f} "
                                                   f"itself misses the goal {goal.threshold}"))
    return found


def round_diagnoses(best_curves: dict | None, trial_statuses: list[str], goal: GoalConfig,
                    settings: DiagnosisConfig, train_score: float | None = None) -> list[Diagnosis]:
    """A round's diagnoses: its best full-data run's curves, plus divergence if many trials failed."""
    found = diagnose(best_curves, goal, settings, train_score) if best_curves else []
    failed = sum(s != "COMPLETED" for s in trial_statuses)
    if trial_statuses and failed / len(trial_statuses) >= settings.failed_share \
            and not any(d.kind == "divergence" for d in found):
        found.append(Diagnosis("divergence", f"{failed} of {len(trial_statuses)} trials failed"))
    return found


def _widen(choice, factor: int = 2):
    values = list(choice.choices)
    return choice.model_copy(update={"choices": sorted({*values, max(values) * factor})})


def adjust(plan: RoundPlan, diagnoses: list[Diagnosis], best: dict) -> tuple[RoundPlan, list[str]]:
    """The next round's plan, and one line per change made. `best`: the best design's values."""
    space, changes = plan.space, []
    trial_epochs, full_epochs, clipnorm = plan.trial_epochs, plan.full_epochs, plan.clipnorm
    common, training = space.common.model_copy(), space.training.model_copy()
    kinds = {d.kind for d in diagnoses}

    if "divergence" in kinds:
        training.learning_rate = training.learning_rate.scaled(0.1)
        common.batchnorm = common.batchnorm.model_copy(update={"choices": [True], "default": True})
        clipnorm = 1.0
        changes += [f"learning_rate range /10 -> [{training.learning_rate.min:.2g}, {training.learning_rate.max:.2g}]",
                    "batchnorm forced on", "gradient clipping (clipnorm 1.0)"]
    elif "stalled" in kinds:
        training.learning_rate = training.learning_rate.scaled(3, ceiling=0.1)
        changes.append(f"learning_rate range x3 -> [{training.learning_rate.min:.2g}, {training.learning_rate.max:.2g}]")
        adaptive = [o for o in training.optimizer.choices if o != "sgd"] or ["adam"]
        if adaptive != training.optimizer.choices:
            training.optimizer = training.optimizer.model_copy(update={"choices": adaptive, "default": adaptive[0]})
            changes.append(f"optimizer -> {adaptive}")
        active = [a for a in common.activation.choices if a not in ("sigmoid", "tanh")]
        if active and active != common.activation.choices:
            common.activation = common.activation.model_copy(update={"choices": active, "default": active[0]})
            changes.append(f"activation -> {active} (no saturating ones)")

    augment = space.augment
    if "overfitting" in kinds:
        dropout = common.dropout
        low = min(0.6, max(dropout.min, float(best.get("dropout", dropout.min)) + 0.1))
        high = min(0.8, max(dropout.max, low + 0.2))
        common.dropout = dropout.model_copy(update={"min": low, "max": high, "default": low})
        l2 = sorted({*[v for v in common.l2.choices if v > 0], 1e-4, 1e-3})
        common.l2 = common.l2.model_copy(update={"choices": l2, "default": l2[0]})
        changes += [f"dropout range -> [{low:.2f}, {high:.2f}]", f"l2 -> {l2}"]
        if True not in common.batchnorm.choices:
            common.batchnorm = common.batchnorm.model_copy(update={"choices": [*common.batchnorm.choices, True]})
            changes.append("batchnorm allowed")
        if augment is not None:
            augment = augment.model_copy(update={"choices": [True], "default": True})
            changes.append("augmentation on (the configured training-only transforms, noise or word dropout)")
        else:
            changes.append("augmentation: none configured for this input kind (augment.noise / augment.word_dropout)")

    per_family = dict(space.per_family)
    if "overfitting" in kinds:
        for name, family_space in per_family.items():
            declared = family(name)
            if declared.freezes:  # fewer layers fine-tuned: freeze more
                depth = getattr(family_space, declared.depth)
                current = int(best.get(family_key(name, declared.depth), depth.default))
                high = max(depth.min, current // 2)
                per_family[name] = family_space.model_copy(update={declared.depth: depth.model_copy(
                    update={"max": high, "default": min(depth.default, high)})})
                changes.append(f"{name}: freeze more ({declared.depth} at most {high})")
    if "underfitting" in kinds:
        for name, family_space in per_family.items():
            declared = family(name)
            depth = getattr(family_space, declared.depth)
            current = int(best.get(family_key(name, declared.depth), depth.min))
            # a fine-tuning family unfreezes twice as many layers; the others grow by a block
            grown = depth.max * 2 if declared.freezes else depth.max + 1
            update = {declared.depth: depth.model_copy(update={"min": max(depth.min, min(current, grown)),
                                                               "max": grown})}
            update.update({width: _widen(getattr(family_space, width)) for width in declared.widths})
            per_family[name] = family_space.model_copy(update=update)
        trial_epochs, full_epochs = trial_epochs * 2, int(full_epochs * 1.5)
        changes += ["deeper: each family's depth range max +1 (capped where the input would collapse)",
                    "wider: width choices x2", f"epochs per trial -> {trial_epochs}, full training -> {full_epochs}"]
        if "overfitting" not in kinds:
            high = max(common.dropout.min, common.dropout.max / 2)
            common.dropout = common.dropout.model_copy(update={"max": high, "default": min(common.dropout.default, high)})
            changes.append(f"dropout max -> {high:.2f}")

    new_space = space.replace(common=common, training=training, augment=augment, per_family=per_family)
    return RoundPlan(new_space, trial_epochs, full_epochs, clipnorm), changes
