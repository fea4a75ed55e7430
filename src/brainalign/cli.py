"""The command line: parses arguments and calls one library function per command, nothing more."""

from __future__ import annotations

import errno
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from typer._click import exceptions as click_errors

from brainalign import __version__
from brainalign.errors import BrainAlignError

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, no_args_is_help=True,
                  help="Align vision models with the brain, and measure honestly whether it made them robust.")


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"brainalign {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="show tracebacks for errors (anywhere on the line)")] = False,
    version: Annotated[bool, typer.Option("--version", callback=_show_version, is_eager=True,
                                          help="print the version and exit")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", help="warnings and results only, no progress (anywhere on "
                                        "the line)")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", help="debug lines too (anywhere on the line)")] = False,
) -> None:
    """brainalign: train with brain-inspired regularizers, attack, measure alignment, report."""


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="folder for the run folders and reports")] = Path("runs"),
    quick: Annotated[bool, typer.Option(help="a smaller study (fewer epochs and test images), under a minute")] = False,
    seeds: Annotated[int | None, typer.Option(min=1, help="seeds per condition (default 5, quick 3)")] = None,
    workers: Annotated[int | None, typer.Option(min=1, help="parallel runs (default: CPU cores, at most 4)")] = None,
    check: Annotated[bool, typer.Option(help="run the headline check (FAB-T, Square, APGD-T on every target) on "
                                             "seed 0 and write headline_check.json, instead of citing the "
                                             "stored one")] = False,
) -> None:
    """Run the embedded study on scikit-learn's digits (brain data simulated) and write its report."""
    from brainalign.demo import run_demo

    experiment_dir = run_demo(out, quick=quick, seeds=seeds, workers=workers, check=check)
    typer.echo((experiment_dir / "summary.md").read_text())
    typer.echo(f"wrote {experiment_dir / 'summary.json'}, {experiment_dir / 'study.json'} and the report: "
               f"{experiment_dir / 'report.html'} (also report.md, report.json)")
    if check:
        typer.echo(f"wrote the headline check to {experiment_dir / 'headline_check.json'}; a plain demo cites the "
                   f"copy in src/brainalign/tuned/ (docs/evaluation.md)")


@app.command()
def train(
    config: Annotated[Path, typer.Argument(help="YAML run configuration (see configs/)")],
    set_: Annotated[list[str] | None, typer.Option("--set", help="override, e.g. --set train.epochs=5")] = None,
    evaluate: Annotated[bool, typer.Option(help="evaluate after training")] = True,
    distributed: Annotated[bool, typer.Option(
        "--distributed", help="data-parallel over --nproc-per-node processes (torchrun; gloo on CPU, nccl on GPU)")
    ] = False,
    nproc_per_node: Annotated[int, typer.Option("--nproc-per-node", min=1, help="processes for --distributed")] = 2,
) -> None:
    """Train (or resume) one run and evaluate it; ends with a summary (clean, headline robust, self-checks)."""
    start = time.perf_counter()
    if distributed:
        from brainalign.distributed import launch

        run_dir = launch(config, set_ or [], nproc_per_node=nproc_per_node, evaluate=evaluate)
    else:
        from brainalign.config import load_config
        from brainalign.train import train as train_run

        run_dir = train_run(load_config(config, set_ or []), evaluate=evaluate)
    from brainalign.console import run_summary

    typer.echo(run_summary(run_dir, time.perf_counter() - start))


@app.command()
def sweep(
    config: Annotated[Path, typer.Argument(help="sweep YAML: base config, grid/random fields, name_template "
                                                "(see configs/sweep_*.yaml)")],
    address: Annotated[str | None, typer.Option(
        help="join a Ray cluster: host:port, ray://host:port or auto (default: a local Ray on this machine)")] = None,
    progress: Annotated[bool, typer.Option(
        help="also show Ray's and Tune's own output (progress table, worker output); default: one line per trial")
    ] = False,
) -> None:
    """Run a grid/random sweep on Ray Tune; re-running skips finished trials and resumes interrupted ones."""
    from brainalign.sweep import RESULT, run_sweep, sweep_summary_lines

    result = run_sweep(config, address=address, progress=progress, on_trial=typer.echo)
    for line in sweep_summary_lines(result):
        typer.echo(line)
    if result.failed:
        raise BrainAlignError(f"{len(result.failed)} trial(s) failed; see {result.experiment_dir / RESULT}")


@app.command()
def tune(
    config: Annotated[Path, typer.Argument(help="tuning YAML: base run, seeds, cheap attack, methods with their "
                                                "grids (see configs/sweep_tune_digits.yaml)")],
    out: Annotated[Path, typer.Option(help="folder for <method>.yaml and manifest.json (the demo reads "
                                               "src/brainalign/tuned, package data)")] = Path("src/brainalign/tuned"),
    address: Annotated[str | None, typer.Option(help="join a Ray cluster (default: a local Ray)")] = None,
    progress: Annotated[bool, typer.Option(help="also show Ray's and Tune's own output")] = False,
) -> None:
    """Tune every method by the one selection rule on the validation split; write the selected configs."""
    from brainalign.tune import MANIFEST, run_tuning, summary_lines

    manifest = run_tuning(config, out, address=address, progress=progress, on_trial=typer.echo)
    for line in summary_lines(manifest):
        typer.echo(line)
    typer.echo(f"wrote {len(manifest['configs'])} configs and {out / MANIFEST}")


@app.command()
def leaderboard(
    root: Annotated[Path, typer.Argument(help="a folder above run folders (an experiment folder or out_dir)")],
    out: Annotated[Path | None, typer.Option(help="output folder (default: ROOT/leaderboard)")] = None,
    threat_model: Annotated[str | None, typer.Option(help="Linf or L2 for every model (default: per model)")] = None,
    eps: Annotated[float | None, typer.Option(help="headline strength (default: the data's stated eps)")] = None,
) -> None:
    """Aggregate run folders: Parquet table, RobustBench-style JSON per model, sortable HTML page."""
    from brainalign.leaderboard import build_leaderboard

    folder = build_leaderboard(root, out, threat_model=threat_model, eps=eps, echo=typer.echo)
    typer.echo(f"wrote {folder / 'leaderboard.html'}, {folder / 'leaderboard.parquet'} and {folder / 'model_info'}/")


@app.command()
def evaluate(
    run_dir: Annotated[Path, typer.Argument(help="a finished run folder")],
    suite: Annotated[str, typer.Option(help="quick, standard or full")] = "quick",
    n_examples: Annotated[int | None, typer.Option(min=1, help="test images to attack (default: all)")] = None,
) -> None:
    """Attack a trained run with a suite; results are appended to its result.json."""
    from brainalign.evaluate import evaluate_run

    start = time.perf_counter()
    result = evaluate_run(run_dir, suite=suite, n_examples=n_examples)
    for key, entry in result["robustness"].items():
        accs = " ".join(f"{a:.3f}" for a in entry["accuracy"])
        typer.echo(f"{key:40s} {accs}")
    from brainalign.console import run_summary

    typer.echo(run_summary(run_dir, time.perf_counter() - start))


@app.command("list")
def list_(kind: Annotated[str, typer.Argument(help="datasets, models, regularizers, attacks, neural, defences")]):
    """What is registered, with a one-line description each."""
    from brainalign.catalog import catalog  # generated from the registries: no torch import, well under 1 s

    entries = catalog()
    if kind not in entries:
        raise BrainAlignError(f"unknown kind {kind!r}; valid: {', '.join(entries)}")
    for name, description in entries[kind]:
        typer.echo(f"{name:24s} {description}")


data_app = typer.Typer(no_args_is_help=True, help="Inspect or simulate neural recordings.")
app.add_typer(data_app, name="data")


@data_app.command("inspect")
def data_inspect(
    path_or_name: Annotated[str, typer.Argument(help="a data set folder/file, or a simulated loader (sim_eeg, ...)")],
    loader: Annotated[str | None, typer.Option(help="registered neural loader (default: detected from the files)")]
    = None,
    option: Annotated[list[str] | None, typer.Option("--option", help="loader option, e.g. --option split=test")]
    = None,
    ceilings: Annotated[bool, typer.Option(help="compute noise-ceiling summaries")] = True,
    json_: Annotated[bool, typer.Option("--json", help="print the summary as JSON")] = False,
) -> None:
    """Stimuli, repetitions, neuroids, time bins, regions and noise ceilings of a recording."""
    import json

    from brainalign.config import parse_options
    from brainalign.neural import format_inspection, inspect_recording
    from brainalign.neural.inspection import resolve_recording
    from brainalign.regularizers.diagnostics import recording_diagnostics

    recording, name = resolve_recording(path_or_name, loader, parse_options(option or []))
    info = inspect_recording(recording, loader=name or None, ceilings=ceilings)
    info["target_diagnostics"] = recording_diagnostics(recording)
    if json_:
        typer.echo(json.dumps(info, indent=2))
        return
    typer.echo(format_inspection(info))
    d = info["target_diagnostics"]
    pixel_r = "n/a (no images)" if d["pixel_correlation"] is None else f"{d['pixel_correlation']:.2f}"
    typer.echo(f"  as a similarity target: pixel r {pixel_r}, zero share {d['zero_share']:.2f}, "
               f"effective rank {d['effective_rank']:.1f} of {min(d['n_stimuli'], 400)}")
    for warning in d["warnings"]:
        typer.echo(f"  warning: {warning}")


@data_app.command("simulate")
def data_simulate(
    kind: Annotated[str, typer.Argument(help="eeg, v1, it or fmri; or things_eeg2 / nsd: a whole THINGS-EEG2 / "
                                              "NSD-like tree (images + responses) at the published shape")],
    out: Annotated[Path, typer.Option(help="folder to write the simulated data set into")],
    format_: Annotated[str, typer.Option("--format", help="things_eeg2 (EEG only) or brainio")] = "things_eeg2",
    seed: Annotated[int, typer.Option(min=0, help="simulation seed")] = 0,
    option: Annotated[list[str] | None, typer.Option("--option", help="simulation option, e.g. n_stimuli=300")]
    = None,
    scale: Annotated[float, typer.Option(help="things_eeg2, nsd: share of the published size (e.g. 0.01)")] = 1.0,
    image_size: Annotated[int | None, typer.Option(help="things_eeg2, nsd: image side in pixels (default: the "
                                                        "published 500 / 425; a smaller one differs from it)")]
    = None,
) -> None:
    """Write a SIMULATED recording in a published on-disk format (for trying loaders and pipelines)."""
    from brainalign.config import parse_options
    from brainalign.neural import simulate_to_disk
    from brainalign.neural.full_size import TREES, write_tree

    if kind in TREES:
        options = parse_options(option or []) | ({} if image_size is None else {"image_size": image_size})
        path = write_tree(kind, out, scale=scale, seed=seed, **options)
        typer.echo(f"wrote a SIMULATED {kind} tree (scale {scale:g}): {path}")
        return
    path = simulate_to_disk(kind, out, fmt=format_, seed=seed, **parse_options(option or []))
    typer.echo(f"wrote simulated {kind} data: {path}")


@app.command()
def study(
    experiment_dir: Annotated[Path, typer.Argument(help="folder of finished run folders (runs/<experiment>)")],
    recording: Annotated[str, typer.Option(help="registered neural loader, e.g. sim_eeg (brainalign list neural)")],
    path: Annotated[Path | None, typer.Option(help="the recording's files (real data sets only)")] = None,
    layer: Annotated[list[str] | None, typer.Option("--layer", help="layer to measure; repeat for several "
                                                    "(default: every layer the runs share)")] = None,
    option: Annotated[list[str] | None, typer.Option("--option", help="loader option, e.g. --option n_stimuli=500")]
    = None,
    baseline: Annotated[str | None, typer.Option(help="baseline condition (default: 'baseline')")] = None,
    attack: Annotated[str | None, typer.Option(help="attack key of the correlations (default: PGD-Linf)")] = None,
    folds: Annotated[int, typer.Option(min=2, help="cross-validation folds of the predictivity")] = 5,
    time_window: Annotated[tuple[float, float] | None, typer.Option(
        help="START END in ms, post-stimulus: time bins averaged into a run's predictivity (default: 70-170)")] = None,
    ceiling: Annotated[str, typer.Option(help="noise ceiling the window predictivity is divided by "
                                              "(spearman_brown, splithalf, ...; none: raw r)")] = "spearman_brown",
) -> None:
    """Relate every run's neural predictivity to its robustness gain; writes study.json."""
    from brainalign.config import parse_options
    from brainalign.study import format_study, run_study

    spec = {"name": recording, "path": None if path is None else str(path), "options": parse_options(option or [])}
    result = run_study(experiment_dir, spec, layer or None, baseline=baseline, attack=attack, n_folds=folds,
                       time_window_ms=time_window, ceiling=ceiling)
    typer.echo(format_study(result))
    typer.echo(f"wrote {experiment_dir / 'study.json'}")


@app.command()
def report(
    experiment_dir: Annotated[Path, typer.Argument(help="folder of finished run folders (runs/<experiment>)")],
    baseline: Annotated[str | None, typer.Option(help="baseline condition (default: 'baseline')")] = None,
    attack: Annotated[str | None, typer.Option(help="headline attack key (default: the study's, else PGD-Linf)")]
    = None,
) -> None:
    """Write report.html (self-contained), report.md and report.json from the run folders and study.json."""
    from brainalign.reports import write_report

    for path in write_report(experiment_dir, baseline=baseline, attack=attack).values():
        typer.echo(f"wrote {path}")


def _given(argv: list[str], opts: list[str]) -> str | None:
    """The value given on the command line for an option (``--opt v`` or ``--opt=v``), if any."""
    for i, arg in enumerate(argv):
        for opt in opts:
            if arg == opt and i + 1 < len(argv):
                return argv[i + 1]
            if arg.startswith(opt + "="):
                return arg[len(opt) + 1 :]
    return None


def _usage_line(exc: click_errors.UsageError, argv: list[str]) -> str:
    """A usage error as one line: the command, what is wrong, what is allowed."""
    ctx = exc.ctx
    where = ctx.command_path if ctx is not None else "brainalign"
    command = ctx.command if ctx is not None else None
    if isinstance(exc, click_errors.NoSuchOption):
        options = sorted({o for p in (command.params if command else []) for o in [*p.opts, *p.secondary_opts]
                          if o.startswith("-")} | {"--help"})
        return f"{where}: no such option {exc.option_name}; valid: {', '.join(options)}"
    if isinstance(exc, click_errors.BadParameter):
        param = exc.param
        name = ("/".join(param.opts) if getattr(param, "param_type_name", "") == "option"
                else (param.name or "").upper() if param is not None else "a parameter")
        if isinstance(exc, click_errors.MissingParameter):
            what = "option" if getattr(param, "param_type_name", "") == "option" else "argument"
            helptext = getattr(param, "help", None)
            return f"{where}: missing {what} {name}" + (f" ({helptext})" if helptext else "")
        given = _given(argv, list(param.opts)) if param is not None else None
        return f"{where} {name}: {exc.message}" + (f" (got {given!r})" if given is not None else "")
    message = exc.format_message()
    if message.startswith("No such command") and command is not None and hasattr(command, "list_commands"):
        return f"{where}: {message.rstrip('.')}; valid: {', '.join(command.list_commands(ctx))}"
    return f"{where}: {message}"


def main(argv: list[str] | None = None) -> int:
    """Entry point: one line for bad input (exit 2), tracebacks only with --debug (before or after the command)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    if debug:  # a root option, accepted anywhere on the line
        argv = ["--debug"] + [a for a in argv if a != "--debug"]
    # --quiet / --verbose: root options too, accepted anywhere on the line (they only set the log level)
    verbosity = (1 if "--verbose" in argv else 0) - (1 if "--quiet" in argv else 0)
    argv = [a for a in argv if a not in ("--quiet", "--verbose")]
    from brainalign.console import configure

    configure(verbosity)
    command = typer.main.get_command(app)
    try:
        command.main(args=argv, prog_name="brainalign", standalone_mode=False)
    except typer.Exit as exc:
        return exc.exit_code
    except click_errors.NoArgsIsHelpError as exc:
        exc.show()
        return 2
    except click_errors.UsageError as exc:
        if debug:
            raise
        print("error: " + " ".join(_usage_line(exc, argv).split()), file=sys.stderr)
        return 2
    except click_errors.ClickException as exc:
        if debug:
            raise
        print("error: " + " ".join(exc.format_message().split()), file=sys.stderr)
        return 2
    except typer.Abort:
        print("aborted", file=sys.stderr)
        return 130
    except BrainAlignError as exc:
        if debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except OSError as exc:
        if debug:
            raise
        if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES):
            where = f" ({exc.filename})" if exc.filename else ""
            print(f"error: cannot write{where}: {exc.strerror}; free space or choose another --out/out_dir",
                  file=sys.stderr)
            return 2
        print(f"internal error: {type(exc).__name__}: {exc} (run with --debug for the traceback)", file=sys.stderr)
        return 1
    except Exception as exc:
        if debug:
            raise
        print(f"internal error: {type(exc).__name__}: {exc} (run with --debug for the traceback)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
