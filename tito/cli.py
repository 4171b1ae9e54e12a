"""The `tito` command: `tito export`, `tito test`, and the commands listed in `COMMANDS`."""
from __future__ import annotations

import argparse
import sys

from tito import bench, demo, deploy, notebook, readings, tasks, workflow
from tito.project import TitoError, all_modules, find_root, resolve_module


def _modules(root, args):
    if getattr(args, "all", False):
        return all_modules(root)
    if not args.module:
        raise TitoError("name a module (for example 16_compression, 16 or compression) or pass --all")
    return [resolve_module(root, args.module)]


def cmd_export(args) -> int:
    from tito import export

    root = find_root()
    results = [export.render(m) for m in _modules(root, args)]
    if args.check:
        stale = export.differences(results)
        if stale:
            print("tinytorch/ differs from what modules/ exports:")
            for rel in stale:
                print(f"  {rel}")
            print("edit modules/*/*_dev.py (never tinytorch/) and run 'tito export --all'")
            return 1
        print(f"tinytorch/ is in sync with {len(results)} module source(s)")
        return 0
    written = export.write(results)
    for rel in written:
        print(f"{'wrote' if (root / rel).exists() else 'removed'} {rel}")
    if not written:
        print("nothing changed")
    return 0


def cmd_test(args) -> int:
    from tito import testing

    root = find_root()
    return testing.run(root, _modules(root, args), task=args.task, quiet=args.quiet,
                       everything=bool(args.all))


def _register_core(sub) -> None:
    """`tito export` and `tito test`."""
    p = sub.add_parser("export", help="export a module's source into the tinytorch package")
    p.add_argument("module", nargs="?", help="16_compression, 16 or compression")
    p.add_argument("--all", action="store_true", help="every module")
    p.add_argument("--check", action="store_true", help="write nothing; fail if tinytorch/ is out of date")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("test", help="run a module's inline tests, then its pytest suite")
    p.add_argument("module", nargs="?", help="16_compression, 16 or compression")
    p.add_argument("--all", action="store_true", help="every module")
    p.add_argument("--task", help="only the tests of one task, for example 16.3")
    p.add_argument("-q", "--quiet", action="store_true", help="less output")
    p.set_defaults(func=cmd_test)


# The one list of tito's commands: each entry adds its sub-commands to the parser.
COMMANDS = (_register_core, workflow.register, tasks.register, notebook.register, demo.register, bench.register,
            deploy.register, readings.register)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tito", description="TinyTorch's course tool.")
    sub = parser.add_subparsers(dest="command", required=True)
    for register in COMMANDS:
        register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except TitoError as err:
        print(f"tito: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
