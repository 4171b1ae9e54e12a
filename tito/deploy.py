"""`tito deploy FILE --to onnx|torch|safetensors`: a saved `.ttz` model, converted for another runtime.

The file is read and checked (`load_compressed`) before anything is written; the
output goes beside it unless `--out` says where. A missing optional extra, a missing
or corrupt file and an unwritable output each end with one line and exit code 2.
"""
from __future__ import annotations

import math
import os
from pathlib import Path

from tito.backups import note
from tito.project import TitoError, checked_target

_MAX_INPUT = 1 << 24  # values in the one batch the ONNX export runs the model on (64 MB of float32)

# target -> (suffix, the packages of the extra it needs)
TARGETS = {"onnx": (".onnx", ("onnx",)), "torch": (".pt", ("torch",)),
           "safetensors": (".safetensors", ("safetensors",))}


def _check_extra(target: str) -> None:
    from tinytorch.deploy.extra import MissingExtraError, require

    for package in TARGETS[target][1]:
        try:
            require(package, f"tito deploy --to {target}")
        except MissingExtraError as err:
            raise TitoError(str(err)) from None


def _load(path: Path):
    from tinytorch.compression import load_compressed

    if path.is_dir():
        raise TitoError(f"{path} is a folder; FILE must be a .ttz file written by save_compressed")
    if not path.is_file():
        raise TitoError(f"{path}: no such file")
    try:
        return load_compressed(path)
    except ValueError as err:
        raise TitoError(f"{err}; nothing was written") from None
    except OSError as err:
        raise TitoError(f"{path}: cannot read it ({err.strerror or err})") from None


def _input_shape(model, given: str | None) -> tuple[int, ...]:
    """The batch shape for the ONNX export: `--input-shape`, or (1, in_features) of a leading Linear."""
    if given:
        try:
            shape = tuple(int(d) for d in given.replace("x", ",").split(","))
        except ValueError:
            raise TitoError(f"--input-shape must be ints separated by commas, such as 1,1,8,8; got {given!r}") from None
        if min(shape) < 1 or math.prod(shape) > _MAX_INPUT:
            raise TitoError(f"--input-shape {given} must be sizes >= 1 of at most {_MAX_INPUT:,} values in all "
                            f"(the export runs the model once on a batch of zeros of that shape)")
        return shape
    first = model.model[0] if hasattr(model.model, "__getitem__") else model.model
    shape = getattr(getattr(first, "qweight", None), "shape", None) or getattr(getattr(first, "weight", None), "shape", None)
    if shape is None or len(shape) != 2:
        raise TitoError("the model does not start with a Linear layer, so its input shape is unknown: "
                        "pass --input-shape, for example --input-shape 1,1,8,8")
    return (1, shape[1])


def _check_out(out: Path) -> None:
    folder = out.parent
    if not folder.is_dir():
        raise TitoError(f"cannot write {out}: folder {folder} does not exist")
    if not os.access(folder, os.W_OK) or (out.exists() and not os.access(out, os.W_OK)):
        raise TitoError(f"cannot write {out}: permission denied")
    if out.is_dir():
        raise TitoError(f"cannot write {out}: it is a folder")
    try:
        checked_target(out)
    except OSError as err:
        raise TitoError(f"cannot write {out}: {err.strerror}") from None


def convert(file: str, to: str, out: str | None = None, input_shape: str | None = None) -> Path:
    """Convert the `.ttz` model `file` to `to`; returns the path written.

    Raises:
        TitoError: unknown target, missing extra, missing or corrupt file, unwritable output.
    """
    if to not in TARGETS:
        raise TitoError(f"--to must be one of {', '.join(TARGETS)}, got {to!r}")
    _check_extra(to)
    source = Path(file)
    target = Path(out) if out else source.with_suffix(TARGETS[to][0])
    if target.resolve() == source.resolve():
        raise TitoError(f"--out {target} is the input file itself; choose another path")
    _check_out(target)
    model = _load(source)
    from tinytorch import deploy
    from tinytorch.core.files import write_atomic

    note(target, f"before tito deploy --to {to} wrote over it")
    try:
        if to == "onnx":
            deploy.export_onnx(model, target, _input_shape(model, input_shape))
        elif to == "safetensors":
            deploy.save_safetensors(model, target)
        else:
            import io

            import torch

            buffer = io.BytesIO()
            torch.save(deploy.to_torch(model).state_dict(), buffer)
            write_atomic(target, buffer.getvalue())
    except (TypeError, ValueError) as err:
        raise TitoError(f"{source}: {err}") from None
    except OSError as err:
        raise TitoError(f"cannot write {target}: {err.strerror or err}") from None
    except MemoryError:
        raise TitoError(f"{source}: not enough memory to run the model on --input-shape {input_shape}") from None
    except Exception as err:  # onnx's checker and shape inference raise their own types
        if not type(err).__module__.startswith("onnx"):
            raise
        raise TitoError(f"{source}: ONNX cannot take this model with --input-shape {input_shape} "
                        f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}); "
                        "nothing was written") from None
    return target


def _cmd(args) -> int:
    target = convert(args.file, args.to, args.out, args.input_shape)
    print(f"wrote {target} ({target.stat().st_size:,} bytes)")
    if args.to == "torch":
        print("load it with torch.load(path, weights_only=True) into tinytorch.deploy.to_torch(model)")
    return 0


def register(subparsers) -> None:
    """Add `tito deploy` to the `tito` command."""
    p = subparsers.add_parser("deploy", help="convert a saved .ttz model to ONNX, a PyTorch state dict or safetensors")
    p.add_argument("file", help="a file written by save_compressed (.ttz)")
    p.add_argument("--to", required=True, choices=sorted(TARGETS), help="the format to write")
    p.add_argument("--out", help="where to write (default: FILE with the format's suffix)")
    p.add_argument("--input-shape", help="ONNX only: one batch's shape, such as 1,1,8,8 (default: from a leading Linear)")
    p.set_defaults(func=_cmd)
