"""The progress bar every long command shows on stderr (hidden when stderr is not a terminal)."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

console = Console(stderr=True)


def progress_bar(label: str) -> Progress:
    return Progress(TextColumn(f"[bold]{label}"), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeRemainingColumn(), console=console, transient=True, disable=not console.is_terminal)


def say(text: str) -> None:
    """One line on stderr, never wrapped (scripts grep these lines)."""
    console.print(text, highlight=False, soft_wrap=True, markup=False)
