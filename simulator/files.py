"""Reading and writing files: strict YAML in, atomic writes out. Every loader and writer of
the package goes through these few functions, so each rule lives in one place.

* **Strict YAML**: syntax errors name the line and column, duplicate mapping keys are
  rejected (PyYAML silently keeps the last one), a missing file (or a directory where a file
  is expected) is an error. libyaml's C parser is used when PyYAML has it: tables and specs
  are read on every run, and the pure-Python parser alone cost ~25 % of a ResNet-50
  simulation.
* **Bounded YAML**: a file larger than :data:`MAX_YAML_BYTES`, or whose aliases would expand
  to more than :data:`MAX_YAML_NODES` nodes (a "billion laughs" alias bomb fits in 1 KB), is
  rejected *before* it is constructed, in time linear in the file: the event stream is
  scanned once, counting each anchored node's expanded size.
* **Atomic writes**: a file is written under a temporary name in its own directory and
  renamed into place (``os.replace`` is atomic on POSIX), so a reader never sees a partial
  file; a directory is built beside its target and swapped in the same way.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import re
import shutil
import signal
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from simulator.errors import ConfigError, OutputError

_BASE: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

#: Largest YAML file read (bytes). Architecture, energy, recipe and sweep files are a few KB;
#: the largest bundled network spec is ~10 KB and a 10,000-layer synthetic network ~1.5 MB.
MAX_YAML_BYTES = 16 * 1024 * 1024
#: Most YAML nodes a document may expand to through its aliases (scalars, sequences and
#: mappings, each alias counted as the whole subtree it repeats).
MAX_YAML_NODES = 2_000_000


class StrictLoader(_BASE):
    """A (C) SafeLoader that rejects duplicate mapping keys (PyYAML silently keeps the last)."""


def _construct_mapping(loader: StrictLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None,
                f"duplicate key {key!r} (first at line {seen[key] + 1})", key_node.start_mark)
        seen[key] = key_node.start_mark.line
    return loader.construct_mapping(node, deep=deep)


StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _alias_overflow(text: str) -> str:
    """Where the document's expansion through its aliases first crosses
    :data:`MAX_YAML_NODES` nodes (empty if it never does); ``yaml.YAMLError`` on bad syntax."""
    sizes: dict[str, int] = {}
    open_nodes: list[tuple[str | None, int]] = []  # (anchor, nodes so far) per open collection
    total = 0

    def add(n: int) -> None:
        nonlocal total
        total += n
        if open_nodes:
            anchor, count = open_nodes[-1]
            open_nodes[-1] = (anchor, count + n)

    for ev in yaml.parse(text, Loader=_BASE):
        if isinstance(ev, yaml.AliasEvent):
            add(sizes.get(ev.anchor or "", 1))
        elif isinstance(ev, yaml.ScalarEvent):
            if ev.anchor:
                sizes[ev.anchor] = 1
            add(1)
        elif isinstance(ev, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
            open_nodes.append((ev.anchor, 1))
        elif isinstance(ev, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
            anchor, count = open_nodes.pop()
            if anchor:
                sizes[anchor] = count
            total += 1
            if open_nodes:
                outer, n = open_nodes[-1]
                open_nodes[-1] = (outer, n + count)
        if total > MAX_YAML_NODES:
            name = ev.anchor if isinstance(ev, yaml.AliasEvent) else ""
            line = f"line {ev.start_mark.line + 1}" if ev.start_mark else ""
            return line + (f" (alias *{name})" if name else "")
    return ""


def yaml_problems(text: str) -> tuple[Any, list[tuple[str, str]]]:
    """Parse YAML ``text`` strictly and within bounds (module docstring): ``(data, [])`` or
    ``(None, [(where, problem)])``."""
    try:
        if "*" in text:  # aliases are possible: bound their expansion before constructing
            where = _alias_overflow(text)
            if where:
                return None, [(where, f"aliases expand the document to more than "
                                      f"{MAX_YAML_NODES:,} nodes: refused (an alias bomb?)")]
        return yaml.load(text, Loader=StrictLoader), []
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        return None, [(where, f"{exc.problem or exc}")]
    except yaml.YAMLError as exc:
        return None, [("", f"not valid YAML: {exc}")]


def read_text(path: str | Path, error: type[ConfigError] = ConfigError) -> str:
    """The text of a YAML input file, checked as :func:`read_yaml` checks it (exists, within
    :data:`MAX_YAML_BYTES`, UTF-8)."""
    p = Path(path)
    check_file(p, error, "a YAML file")
    size = p.stat().st_size
    if size > MAX_YAML_BYTES:
        raise error(str(p), [("", f"file is {size:,} bytes; YAML inputs are limited to "
                                  f"{MAX_YAML_BYTES:,} bytes (simulator.files.MAX_YAML_BYTES)")])
    try:
        return p.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise error(str(p), [("", f"not UTF-8 text, so not YAML: {exc}")]) from None


def read_yaml(path: str | Path, error: type[ConfigError] = ConfigError, *,
              text: str | None = None) -> Any:
    """Read a YAML file strictly: missing file, syntax errors and duplicate keys are errors.
    ``text``: the file's contents, already read by :func:`read_text` (parsed, not re-read)."""
    p = Path(path)
    data, problems = yaml_problems(read_text(p, error) if text is None else text)
    if problems:
        raise error(str(p), problems)
    return data


def check_file(path: Path, error: type[ConfigError], expected: str) -> None:
    """Raise ``error`` naming ``path`` unless it is an existing regular file."""
    if path.is_dir():
        raise error(str(path), [("", f"is a directory; expected {expected}")])
    if not path.is_file():
        raise error(str(path), [("", "file not found")])


def write_atomic(path: str | Path, data: str | bytes) -> Path:
    """Write ``data`` (text as UTF-8, or bytes) to ``path`` via a temporary file and rename."""
    target = Path(path)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data.encode("utf-8") if isinstance(data, str) else data)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; results are meant to be shared
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def safe_name(text: str, limit: int = 100) -> str:
    """A file name from arbitrary text: letters, digits and ``._+-`` kept, every other run
    replaced by ``_``, no leading dot or dash, at most ``limit`` characters (longer names keep
    their start and gain an 8-digit hash of the whole, so distinct inputs stay distinct).
    Never a path: ``../x`` becomes ``x``-like, ``a/b`` becomes ``a_b``."""
    name = re.sub(r"[^A-Za-z0-9._+-]+", "_", text).lstrip(".-_") or "result"
    if len(name) > limit:
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:8]
        name = f"{name[:limit - 9]}-{digest}"
    return name


def check_output_dir(path: str | Path) -> Path:
    """Make sure results can be written into directory ``path`` *before* any work: create it
    (and its parents) if needed, and prove it writable with a temporary file. Raises
    :class:`~simulator.errors.OutputError` naming the path and the reason."""
    p = Path(path)
    for parent in (p, *p.parents):
        if parent.exists() and not parent.is_dir():
            raise OutputError(f"{p}: cannot write results there: {parent} is a file, "
                              f"not a directory")
        if parent.exists():
            break
    try:
        p.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=p):
            pass
    except OSError as exc:
        raise OutputError(f"{p}: cannot write results there: {exc.strerror or exc}") from None
    return p


_RENAME_EXCHANGE = 2  # linux/fs.h
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Swap two directory entries in one atomic step (Linux ``renameat2(RENAME_EXCHANGE)``);
    False where the kernel, C library or file system cannot."""
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    return fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0


@contextmanager
def _interrupts_deferred() -> Iterator[None]:
    """Hold Ctrl-C (SIGINT) until the block ends, then deliver it: for the few file-system
    steps that must not be cut in half. Signals reach only the main thread; elsewhere (and
    where the handler cannot be set) a no-op."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if caught:
            if callable(previous):
                previous(signal.SIGINT, None)
            elif previous != signal.SIG_IGN:
                os.kill(os.getpid(), signal.SIGINT)


def replace_dir_atomic(target: str | Path, fill: Callable[[Path], None],
                       may_replace: Callable[[Path], bool]) -> Path:
    """Build a directory with ``fill(tmp_dir)`` beside ``target``, then swap it into place.

    A reader of ``target`` sees the old directory or the new one, whole, never a mix: the
    swap is one ``renameat2(RENAME_EXCHANGE)`` on Linux; elsewhere two renames, and an
    interruption between them leaves the old set as ``.<name>.old`` beside the target. An
    existing ``target`` is replaced only if ``may_replace(target)`` (e.g. it is a result set
    of the same inputs, not a user's folder); on any error, ``KeyboardInterrupt`` included,
    the temporary directory is removed and ``target`` is left as it was. Returns ``target``.
    """
    dest = Path(target)
    tmp: Path | None = None
    try:
        with _interrupts_deferred():
            tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp"))
        fill(tmp)
        os.chmod(tmp, 0o755)
        with _interrupts_deferred():  # the swap and its clean-up are never cut in half
            if not dest.exists():
                tmp.rename(dest)
            elif not may_replace(dest):
                raise FileExistsError(f"{dest}: exists and is not replaceable")
            elif _exchange(tmp, dest):
                shutil.rmtree(tmp, ignore_errors=True)  # after the swap: the old set
            else:  # no atomic exchange here: two renames
                old = dest.with_name(f".{dest.name}.old")
                shutil.rmtree(old, ignore_errors=True)
                dest.rename(old)
                tmp.rename(dest)
                shutil.rmtree(old, ignore_errors=True)
            tmp = None
    except BaseException:
        if tmp is not None:
            with _interrupts_deferred():
                shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest


WORKLOADS = Path(__file__).resolve().parents[1] / "workloads"


def bundled(path: str | Path, folder: str) -> Path:
    """``path`` itself, or for a bare name that is not a file, the bundled
    ``workloads/<folder>/<name>.yaml`` if it exists (``int8``: ``workloads/recipes/int8.yaml``)."""
    p = Path(path)
    if not p.exists() and p.suffix == "" and len(p.parts) == 1:
        candidate = WORKLOADS / folder / f"{p}.yaml"
        if candidate.is_file():
            return candidate
    return p
