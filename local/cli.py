"""The command line every corpus module of `local` shares.

    python -m local.<corpus> download [--corpus-dir DIR] [--dest corpus] [--url URL]
                                      [--sha256 HEX] [--force] [--no-progress]
    python -m local.<corpus> prepare --corpus-dir DIR [--data-dir data] [--force]
    python -m local.<an4|librispeech|fsdd> transfer [--data-dir data] [--force]

from the repository root, or from recipes/<corpus>/ as run.sh does it, `local_py <corpus> ...`
(recipes/common/options.sh: the checkout, ../.., on PYTHONPATH).

`download` finds the corpus (`--corpus-dir`, else a copy it knows, such as the shared one beside
the checkout) or fetches it into `--dest`, and prints only its directory, for
`corpus=$(... download ...)`; `--url` and `--sha256` (for a corpus fetched as one archive) say
what to fetch and pin it, `--force` fetches again over a complete earlier download. `prepare`
writes the Kaldi data dirs, `local/dict` and `local/lm.arpa` under `--data-dir` from the corpus in
`--corpus-dir`; `--force` redoes it where its `.done` markers say it is done.

A corpus module plugs in with a `Corpus`: its download and prepare functions and the options of
its own (an4's `--no-shared`, `--lm-order`, ...), whose values reach those functions as keyword
arguments named after the options, and commands of its own (`Command`): librispeech's
`download-lm`, and `transfer` (an4, librispeech, fsdd: untranscribed audio of other corpora as
data dirs, its options the same in each; local/transfer.py). A ValueError or OSError ends the
command with `error: ...` on stderr and exit status 1.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

AddArgs = Callable[[argparse.ArgumentParser], None]


def _none(_: argparse.ArgumentParser) -> None:
    pass


@dataclass(frozen=True)
class Command:
    """A subcommand of one corpus only (librispeech's `download-lm`): `run(**options)`, all its
    options its own; what `run` returns is printed."""

    help: str
    run: Callable[..., object]
    add_args: AddArgs


@dataclass(frozen=True)
class Corpus:
    """What one corpus plugs into the shared command line.

    `name`: the module, local.<name>. `download(dest, corpus_dir=, force=, progress=, [url=,
    sha256=,] **own options)` returns the corpus directory; `prepare(corpus_dir, data_dir,
    force=, **own options)`. `holds`: what a corpus directory holds, for the help. `url`: the
    default of `--url`, or None where there is none (TIMIT: the user's mirror); `archive`
    False: no `--url` or `--sha256` (LibriSpeech's several archives: `--base-url`,
    `--checksums`)."""

    name: str
    doc: str
    download: Callable[..., Path]
    prepare: Callable[..., object]
    holds: str
    url: str | None = None
    archive: bool = True
    download_args: AddArgs = _none
    prepare_args: AddArgs = _none
    commands: dict[str, Command] = field(default_factory=dict)

    def parser(self) -> argparse.ArgumentParser:
        p = argparse.ArgumentParser(prog=f"python -m local.{self.name}",
                                    description=self.doc.split("\n")[0])
        sub = p.add_subparsers(dest="cmd", required=True)

        dl = sub.add_parser("download", help="find or download the corpus; prints its directory")
        dl.add_argument("--corpus-dir", type=Path, default=None,
                        help=f"an existing copy ({self.holds}) to use where it is")
        dl.add_argument("--dest", type=Path, default=Path("corpus"),
                        help="where a download goes")
        if self.archive:
            dl.add_argument("--url", default=self.url, help="the archive to fetch")
            dl.add_argument("--sha256", default=None,
                            help="the archive's sha256 (without it, where the corpus has none "
                                 "built in, the fetched archive's is logged)")
        dl.add_argument("--force", action="store_true",
                        help="download even where an earlier download is complete")
        dl.add_argument("--no-progress", action="store_true")
        self.download_args(dl)

        pr = sub.add_parser("prepare", help="write Kaldi data dirs, dictionary and LM")
        pr.add_argument("--corpus-dir", type=Path, required=True,
                        help=f"the corpus ({self.holds}), as `download` prints it")
        pr.add_argument("--data-dir", type=Path, default=Path("data"))
        pr.add_argument("--force", action="store_true", help="redo even if .done markers exist")
        self.prepare_args(pr)

        for name, cmd in self.commands.items():
            cmd.add_args(sub.add_parser(name, help=cmd.help))
        return p

    def main(self, argv: Sequence[str] | None = None) -> int:
        args = vars(self.parser().parse_args(argv))
        cmd = args.pop("cmd")
        if "no_progress" in args:
            args["progress"] = not args.pop("no_progress")
        try:
            if cmd == "download":
                print(self.download(args.pop("dest"), **args))  # stdout: only the path
            elif cmd == "prepare":
                self.prepare(args.pop("corpus_dir"), args.pop("data_dir"), **args)
            else:
                out = self.commands[cmd].run(**args)
                if out is not None:
                    print(out)
        except (ValueError, OSError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        return 0

    def run(self) -> None:
        """`python -m local.<corpus>`: main() on the command line, its status the exit's."""
        sys.exit(self.main())
