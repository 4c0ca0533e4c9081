"""Command-line pieces shared by ``train_ubm`` and ``evaluate``: which speakers of a corpus."""

from pathlib import Path

from django.core.management.base import CommandError

from verification.engine import corpus


def speaker_list(value: str) -> list[str]:
    """``"a, b,,c"`` -> ``["a", "b", "c"]``."""
    return [s for s in (part.strip() for part in value.split(",")) if s]


def add_speaker_arguments(parser, *, verb: str) -> None:
    """``--speakers`` and ``--exclude-speakers`` (comma-separated), ``verb`` as in the help."""
    parser.add_argument(
        "--speakers",
        type=speaker_list,
        default=[],
        metavar="S1,S2,...",
        help=f"{verb} these speakers only (comma-separated)",
    )
    parser.add_argument(
        "--exclude-speakers",
        type=speaker_list,
        default=[],
        metavar="S1,S2,...",
        help=f"speakers not to {verb} (comma-separated)",
    )


def list_recordings(folder: Path, options: dict) -> list[corpus.Recording]:
    """The corpus' recordings of the selected speakers; a bad selection is a CommandError."""
    try:
        return corpus.list_recordings(
            folder,
            speakers=options["speakers"] or None,
            exclude_speakers=options["exclude_speakers"] or None,
        )
    except ValueError as exc:
        raise CommandError(str(exc)) from exc
