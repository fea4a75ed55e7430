"""The command line: parses arguments and calls one library function per command, nothing more."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import click
import typer

from brainalign.errors import BrainAlignError

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, no_args_is_help=True,
                  help="Align vision models with the brain, and measure honestly whether it made them robust.")


@app.callback()
def _root(debug: Annotated[bool, typer.Option("--debug", help="show tracebacks for errors")] = False) -> None:
    """brainalign: train with brain-inspired regularizers, attack, measure alignment, report."""


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="folder for the run folders and reports")] = Path("runs"),
    quick: Annotated[bool, typer.Option(help="a smaller study (fewer epochs and test images), under a minute")] = False,
    seeds: Annotated[int | None, typer.Option(min=1, help="seeds per condition (default 3)")] = None,
) -> None:
    """Run the embedded study on scikit-learn's digits (brain data simulated) and write its report."""
    from brainalign.demo import run_demo

    experiment_dir = run_demo(out, quick=quick, seeds=seeds)
    typer.echo(f"wrote {experiment_dir / 'summary.json'} and {experiment_dir / 'report.md'}")
    typer.echo((experiment_dir / "report.md").read_text())


@app.command()
def train(
    config: Annotated[Path, typer.Argument(help="YAML run configuration (see configs/)")],
    set_: Annotated[list[str] | None, typer.Option("--set", help="override, e.g. --set train.epochs=5")] = None,
    evaluate: Annotated[bool, typer.Option(help="evaluate after training")] = True,
) -> None:
    """Train (or resume) one run and evaluate it."""
    from brainalign.config import load_config
    from brainalign.train import train as train_run

    run_dir = train_run(load_config(config, set_ or []), evaluate=evaluate)
    typer.echo(f"run folder: {run_dir}")


@app.command()
def evaluate(
    run_dir: Annotated[Path, typer.Argument(help="a finished run folder")],
    suite: Annotated[str, typer.Option(help="quick, standard or full")] = "quick",
    n_examples: Annotated[int | None, typer.Option(min=1, help="test images to attack (default: all)")] = None,
) -> None:
    """Attack a trained run with a suite; results are appended to its result.json."""
    from brainalign.evaluate import evaluate_run

    result = evaluate_run(run_dir, suite=suite, n_examples=n_examples)
    for key, entry in result["robustness"].items():
        accs = " ".join(f"{a:.3f}" for a in entry["accuracy"])
        typer.echo(f"{key:40s} {accs}")


@app.command("list")
def list_(kind: Annotated[str, typer.Argument(help="datasets, models, regularizers, attacks, neural, defences")]):
    """What is registered, with a one-line description each."""
    from brainalign.registry import ALL

    if kind not in ALL:
        raise BrainAlignError(f"unknown kind {kind!r}; valid: {', '.join(ALL)}")
    for entry in ALL[kind].entries():
        typer.echo(f"{entry.name:24s} {entry.description}")


def main(argv: list[str] | None = None) -> int:
    """Entry point: one line for bad input (exit 2), tracebacks only with --debug."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    command = typer.main.get_command(app)
    try:
        command.main(args=argv, prog_name="brainalign", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Abort:
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
    except Exception as exc:
        if debug:
            raise
        print(f"internal error: {type(exc).__name__}: {exc} (run with --debug for the traceback)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
