"""The command line: parses arguments and calls library functions, nothing more.

Heavy libraries (torch, sklearn, cv2, datasets) are imported inside the commands so that
`segtool --help` answers at once.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import List, Optional

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Unsupervised image segmentation with an SC-VAE backbone.")
from .data_cli import data_app  # noqa: E402  (typer only; heavy imports live inside the commands)

app.add_typer(data_app, name="data")

DEBUG_ENV = "SEGTOOL_DEBUG"


@app.command()
def train(
    recipe: str = typer.Argument(..., help="A shipped recipe name (small-cpu, imagenet, ffhq, ...) or a path to a YAML recipe."),
    set_: List[str] = typer.Option([], "--set", help="Override a recipe entry, e.g. --set model.d=4 --set train.lr=2e-4."),
    data_root: Optional[Path] = typer.Option(None, "--data-root", help="Folder of training images (data.root)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Run directory (default: the recipe's `out`)."),
    max_steps: Optional[int] = typer.Option(None, "--max-steps", min=1, help="Stop after this many optimiser steps."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the newest checkpoint in the run directory."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show the model, parameter counts and settings; train nothing."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda"),
):
    """Train an SC-VAE from a recipe, on CPU, one GPU, or many under torchrun."""
    from .training.run import run_training

    path = run_training(recipe, list(set_), str(data_root) if data_root else None, str(out) if out else None,
                        max_steps, resume, dry_run, device)
    if path is not None:
        typer.echo(f"final checkpoint: {path}")


def _error_types():
    """Expected failures and their exit codes; anything else is a bug and keeps its traceback."""
    from .errors import SegtoolError

    table: list[tuple[type, int]] = [(SegtoolError, -1)]
    try:
        from scvae.checkpoint import CheckpointError
        from scvae.train import TrainingDiverged

        table += [(CheckpointError, 1), (TrainingDiverged, 1)]
    except ImportError:
        pass
    from .training.data import TrainingDataError
    from .training.recipe import RecipeError

    table += [(RecipeError, 2), (TrainingDataError, 1), (FileExistsError, 2)]
    return table


def main(argv: Optional[list[str]] = None) -> None:
    import click

    args = list(sys.argv[1:] if argv is None else argv)
    if "--debug" in args:
        args.remove("--debug")
        os.environ[DEBUG_ENV] = "1"
    debug = os.environ.get(DEBUG_ENV) == "1"
    command = typer.main.get_command(app)
    try:
        code = command.main(args=args, prog_name="segtool", standalone_mode=False)
        sys.exit(code if isinstance(code, int) else 0)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        typer.echo("segtool: aborted", err=True)
        sys.exit(130)
    except Exception as exc:
        _report(exc, debug)


def _report(exc: Exception, debug: bool) -> None:
    from scvae.train import TrainingInterrupted

    if isinstance(exc, TrainingInterrupted):
        where = f"checkpoint saved to {exc.checkpoint}; " if exc.checkpoint else ""
        if os.environ.get("RANK", "0") == "0":
            typer.echo(f"segtool: interrupted at step {exc.step}; {where}rerun with --resume to continue", err=True)
        sys.exit(130)
    for kind, code in _error_types():
        if isinstance(exc, kind):
            if debug:
                import traceback

                traceback.print_exception(exc)
            if os.environ.get("RANK", "0") == "0":  # under torchrun, one report, not one per process
                typer.echo(f"segtool: error: {exc}", err=True)
            sys.exit(getattr(exc, "exit_code", code) if code == -1 else code)
    raise exc


if __name__ == "__main__":
    main()
