"""The seed papers' published claims beside what brainalign measures, with a verdict per paper.

One row per paper: the published claim (metric, direction, size; numbers from the papers as summarised in
docs/claims.md), the nearest measurement under brainalign's protocol (the headline gain over the same-seed
baseline, and where the claim is about the brain's structure, the structure-specific gain against the
matched control), and a verdict:

- ``direction reproduced``: the gain's 95% CI over seeds lies above 0 (and, for a structure claim, the
  structure-specific gain is positive on both its intervals, over images and over seeds);
- ``not reproduced``: the measured direction is not the claimed one at that confidence (the reason says which
  part failed);
- ``not testable here``: nothing measured the claim (no condition ran the method, or its targets were
  SIMULATED where the claim is about real recordings); the reason says what it needs.

Conditions are found by the regularizer names (and the recording behind them) in result.json, never by
condition names; numbers come from the summary (``brainalign.analysis.summary.summarize``). A simulated
recording cannot test a claim about the brain: the row then says what the pipeline showed on it, as a check
of the pipeline only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from brainalign.analysis.runs import Run, by_condition, role
from brainalign.analysis.stats import mean_ci
from brainalign.headline import headline_accuracy

REPRODUCED = "direction reproduced"
NOT_REPRODUCED = "not reproduced"
NOT_TESTABLE = "not testable here"


@dataclass(frozen=True)
class Claim:
    """A paper's published claim and how brainalign finds the runs that test it."""

    paper: str
    claim: str  # the published claim, with its metric and size
    metric: str
    direction: str  # "higher" (robust accuracy / gain above the baseline) or "lower"
    size: str
    regularizer: str | None  # the regularizer whose runs test it (None: an attack claim)
    modalities: tuple[str, ...] = ()  # recording kinds the claim is about (empty: no recording needed)
    structure: bool = False  # the claim is that real targets beat shuffled / control targets
    needs: str = ""  # what a faithful test needs beyond this installation's data
    protocol: str = ""  # how brainalign's measurement differs from the paper's metric


CLAIMS: tuple[Claim, ...] = (
    Claim("Guo et al. 2024 (arXiv 2409.03646), EEG co-training",
          "co-training a ResNet50 to predict human EEG raises adversarial robustness; shuffled or random EEG "
          "give smaller gains",
          "gain in accuracy over the baseline averaged over high eps (Linf-PGD 40 it, L2-PGD, C&W)", "higher",
          "mean gain Linf-PGD +0.023, L2-PGD +0.042, C&W +0.042 (best model +0.044 / +0.080 / +0.076)",
          "neural_prediction", ("EEG",), True, "real THINGS-EEG2 recordings (16,540 images, 17 channels)"),
    Claim("Attias et al. 2024 (arXiv 2410.03952), pixel similarity",
          "a thresholded pixel-similarity regularizer raises robustness to noise, transferred FGSM and the "
          "Boundary attack at clean >= 0.9 x baseline",
          "accuracy under Gaussian noise (D = 0.1) / transferred FGSM (0.02); median Boundary ||d||^2/D",
          "higher", "figures only (no table); white-box attacks were not reported",
          "pixel_similarity", (), False, "",
          "the headline is white-box APGD-CE + APGD-T, a stronger test than the paper's noise and transferred FGSM"),
    Claim("Shao et al. 2024 (arXiv 2405.02564), NSD neural guidance",
          "guiding a ResNet18 with a head that predicts NSD voxel responses raises Linf-PGD robustness; "
          "shuffled-image and random-predictor controls do not",
          "accuracy under Linf-PGD / FGSM (eps 0.001-0.019, normalised units)", "higher",
          "gains in figures; a = 0.9 on a 50-class ImageNet subset",
          "neural_prediction", ("fMRI",), True, "NSD betas and an ImageNet subset"),
    Claim("Li et al. 2019 (arXiv 1911.05072), neural similarity",
          "regularizing toward denoised mouse-V1 similarity raises the minimal adversarial perturbation and "
          "noise robustness; shuffled targets give less",
          "median minimal Linf / L2 perturbation (Boundary); accuracy at the highest Gaussian noise", "higher",
          "median Linf 0.0034 vs 0.0025 baseline (+36%), shuffled 0.0030; noise ~50% vs ~20%",
          "neural_similarity", ("V1",), True, "real mouse-V1 recordings (denoised, 5,000 images)"),
    Claim("Safarani et al. 2021 (NeurIPS), V1 co-training",
          "co-training to predict monkey-V1 responses raises corruption robustness; shuffled targets do not",
          "accuracy on TinyImageNet-C relative to the baseline", "higher",
          "114.1 +- 4.0% of baseline (shuffled 96.3 +- 2.8%, oracle 123.7 +- 3.8%; from the plot script)",
          "neural_prediction", ("V1",), True, "real monkey-V1 recordings and TinyImageNet-C"),
    Claim("Dapello et al. 2023 (ICLR), IT alignment",
          "aligning CORnet-S to macaque IT with log(1 - CKA) raises white-box PGD robustness",
          "accuracy under PGD (64 it) over Linf / L2 strengths", "higher",
          "gains in figures (ImageNet-pretrained CORnet-S)",
          "cka", ("IT",), False, "real macaque-IT recordings and ImageNet"),
    Claim("Nassar et al. 2020 (NeurIPS), 1/n spectrum",
          "a penalty pulling the hidden layer's eigenspectrum toward 1/n raises FGSM / PGD robustness",
          "accuracy under FGSM / PGD (MNIST eps up to 0.3, 40 steps)", "higher",
          "gains in figures (MLP and small CNN on MNIST)",
          "spectral", (), False, "",
          "the headline is APGD-CE + APGD-T on the demo's data and model, not PGD on MNIST"),
    Claim("Pirlot et al. 2022 (arXiv 2209.02582), DCCA with V1",
          "DCCA between CORnet-Z and monkey-V1 responses; only FGSM robustness separates real from shuffled "
          "targets (clean top-1 47.4 -> 52.3, shuffled ~52.1)",
          "CIFAR-100 top-1; FGSM accuracy, real vs shuffled", "higher",
          "clean +4.9 points (shuffled +4.7); FGSM difference in figures",
          "dcca", ("V1",), True, "real monkey-V1 recordings (Coen-Cagli, 956 stimuli) and CIFAR-100"),
    Claim("Hsiung et al. 2023 (CVPR), composite adversarial attacks",
          "composite semantic + Linf attacks (CAA) lower accuracy below the Linf AutoAttack number of the same "
          "model",
          "accuracy under full CAA (scheduled order) vs AutoAttack Linf 8/255", "lower",
          "leaderboard: clean, AutoAttack, semantic and full CAA per model",
          None, (), False, "runs evaluated with the caa attack"),
)


def modality(source: str) -> str | None:
    """The kind of recording behind a target source ("recording:<name>"), from its loader name."""
    name = source.split(":", 1)[1].lower() if source.startswith("recording:") else ""
    if not name:
        return None
    for kind, keys in (("EEG", ("eeg",)), ("fMRI", ("nsd", "algonauts", "fmri")),
                       ("V1", ("v1", "sinz", "cadena")), ("IT", ("it", "brainio", "majaj"))):
        if any(k in name for k in keys):
            return kind
    return "other"


def _candidates(claim: Claim, groups: dict[str, list[Run]], baseline: str) -> list[tuple[str, str | None]]:
    """(condition, recording kind) of the conditions that ran the claim's regularizer alone, real targets."""
    out = []
    for name, group in groups.items():
        run = group[0]
        regs = run.regularizers
        if [r.get("name") for r in regs] != [claim.regularizer] or role(run, baseline) != "regularizer":
            continue
        targets = run.result.get("regularization_targets") or [{}]
        out.append((name, modality(str((targets[0] or {}).get("source", "")))))
    return out


def _ci_text(ci: dict[str, float]) -> str:
    if not ci or ci.get("n", 0) == 0 or not math.isfinite(ci.get("mean", float("nan"))):
        return "n/a"
    if ci["n"] < 2 or not math.isfinite(ci.get("low", float("nan"))):
        return f"{ci['mean']:+.3f} (one seed)"
    return f"{ci['mean']:+.3f} [{ci['low']:+.3f}, {ci['high']:+.3f}]"


def _structure_row(summary: dict[str, Any], condition: str) -> dict[str, Any] | None:
    rows = [r for r in (summary.get("structure_specific_gains") or {}).get("rows", [])
            if r.get("treatment") == condition and "diff" in r]
    # shuffled / random targets first: the control that keeps everything but the brain's structure
    rows.sort(key=lambda r: (r.get("kind") not in ("shuffled", "random"), str(r.get("control"))))
    return rows[0] if rows else None


def _direction(ci: dict[str, float], claimed: str) -> tuple[bool | None, str]:
    """(claimed direction shown?, words); None when there is no interval."""
    low, high = ci.get("low", float("nan")), ci.get("high", float("nan"))
    if ci.get("n", 0) < 2 or not (math.isfinite(low) and math.isfinite(high)):
        return None, "no interval (fewer than 2 seeds)"
    if (low > 0) if claimed == "higher" else (high < 0):
        return True, f"95% CI {'above' if claimed == 'higher' else 'below'} 0"
    if (high < 0) if claimed == "higher" else (low > 0):
        return False, "95% CI on the opposite side of 0"
    return False, "95% CI holds 0"


def _regularizer_row(claim: Claim, groups: dict[str, list[Run]], summary: dict[str, Any],
                     baseline: str) -> dict[str, Any]:
    found = _candidates(claim, groups, baseline)
    if claim.modalities:
        matching = [c for c in found if c[1] in claim.modalities]
        found = matching or found  # the nearest: the claimed kind of recording if any ran
    if not found:
        return {"condition": None, "verdict": NOT_TESTABLE,
                "reason": f"no condition ran {claim.regularizer} alone with its own (not control) targets"
                          + (f"; needs {claim.needs}" if claim.needs else "")}
    condition, kind = found[0]
    c = summary["conditions"].get(condition, {})
    gain = c.get("gain") or {"n": 0}
    shown, words = _direction(gain, claim.direction)
    row: dict[str, Any] = {"condition": condition, "recording_kind": kind, "gain": gain,
                           "measurement": f"{condition}: headline gain {_ci_text(gain)} ({words}); "
                                          f"{c.get('n_failed', 0)} failed seed(s)"}
    structure = _structure_row(summary, condition) if claim.structure else None
    if claim.structure:
        if structure is None:
            row["measurement"] += "; no matched control ran"
        else:
            row["structure"] = {k: structure[k] for k in ("control", "kind", "diff", "images", "over_seeds",
                                                          "verdict")}
            row["measurement"] += (f"; minus {structure['control']}: {structure['diff']:+.3f} "
                                   f"({structure['verdict']})")
    if claim.modalities and (c.get("simulated_data") or kind not in claim.modalities):
        why = "its targets are SIMULATED" if c.get("simulated_data") else f"its targets are {kind}, not " \
              f"{'/'.join(claim.modalities)}"
        row.update(verdict=NOT_TESTABLE,
                   reason=f"{why}; needs {claim.needs}. On these targets the pipeline shows: {words}")
        return row
    if shown is None:
        row.update(verdict=NOT_TESTABLE, reason=f"{words}; train more seeds")
    elif not shown:
        row.update(verdict=NOT_REPRODUCED, reason=f"headline gain: {words}")
    elif claim.structure and (structure is None or structure["verdict"] != "structure-specific gain"):
        row.update(verdict=NOT_REPRODUCED if structure is not None else NOT_TESTABLE,
                   reason="a gain, but " + ("no matched control ran" if structure is None else
                                            f"not beyond {structure['control']} ({structure['verdict']})"))
    else:
        row.update(verdict=REPRODUCED, reason=f"headline gain: {words}"
                   + (f"; beyond {structure['control']} on both intervals" if structure else ""))
    if claim.protocol:
        row["protocol"] = claim.protocol
        row["reason"] += f" ({claim.protocol})"
    if claim.needs and row["verdict"] != NOT_TESTABLE:
        row["reason"] += f" (on this installation's data and model, not the paper's: {claim.needs})"
    return row


def _attack_row(claim: Claim, runs: Sequence[Run]) -> dict[str, Any]:
    diffs = []
    for run in runs:
        keys = [k for k, v in run.robustness.items() if v.get("attack", k.split("[")[0]) == "caa"]
        head = headline_accuracy(run)
        if not keys or head is None:
            continue
        accuracy = [a for a in run.robustness[keys[0]].get("accuracy", []) if a is not None]
        if accuracy:
            diffs.append(min(accuracy) - head)
    if not diffs:
        return {"condition": None, "verdict": NOT_TESTABLE,
                "reason": "no run was evaluated with both the caa attack and the headline attacks"}
    ci = mean_ci(diffs)
    shown, words = _direction(ci, claim.direction)
    verdict = NOT_TESTABLE if shown is None else REPRODUCED if shown else NOT_REPRODUCED
    return {"condition": "all runs with caa", "gain": ci, "verdict": verdict, "reason": words,
            "measurement": f"CAA accuracy minus headline accuracy over {len(diffs)} runs: {_ci_text(ci)}"}


def claims_table(runs: Sequence[Run], summary: dict[str, Any], baseline: str = "baseline") -> list[dict[str, Any]]:
    """One row per seed paper (``CLAIMS``): the claim, the nearest measurement and the verdict."""
    groups = by_condition(runs)
    rows = []
    for claim in CLAIMS:
        row = {"paper": claim.paper, "claim": claim.claim, "metric": claim.metric, "direction": claim.direction,
               "size": claim.size, "regularizer": claim.regularizer, "structure_claim": claim.structure}
        row.update(_regularizer_row(claim, groups, summary, baseline) if claim.regularizer else
                   _attack_row(claim, runs))
        rows.append(row)
    return rows


def claims_markdown(rows: Sequence[dict[str, Any]]) -> list[str]:
    """The claims table as Markdown lines."""
    lines = ["| paper | published claim (size) | nearest measurement here | verdict |", "|---|---|---|---|"]
    for r in rows:
        cells = [r["paper"], f"{r['claim']} ({r['size']})", r.get("measurement") or "none",
                 f"**{r['verdict']}**: {r['reason']}"]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return lines
