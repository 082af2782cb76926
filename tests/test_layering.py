"""The package's layers, checked from the source: who may import whom, and what imports without torch.

    text/     the text front end (written form -> spoken form): imports only itself; torch-free
    engine/   F5-TTS inference as a library: imports only itself and errors.py
    voices/   voice folders and their prepared cache: may use the engine
    server/   the Wyoming server: may use text, voices and the engine
    server/studio/   the voice studio page, a room of the server: may use the worker, the request log, the pcm
              helpers and the settings of the server, the text front end, the voices and the engine's
              options; only server/app.py
              (which starts it) imports it, so the Wyoming side never depends on the page or on aiohttp
    ishowtts_dev/ (outside the package): developer tools; nothing in wyoming_ishowtts imports it

Every ``import`` statement is read with ``ast`` (also those inside functions and under ``TYPE_CHECKING``),
relative ones resolved, so a lazy import cannot slip past the rule; an import of a module of this project
that does not exist (a lazy import left behind by a move: mypy is told to ignore missing imports) fails too.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "wyoming_ishowtts"
PROJECT = ("wyoming_ishowtts", "ishowtts_dev")

# Layer -> what its modules may import from this project (a module, or a package and everything in it).
# The first layer a module is within decides, so a room comes before the layer it is in.
ALLOWED = {
    "wyoming_ishowtts.server.studio": (
        "wyoming_ishowtts.server.studio",
        "wyoming_ishowtts.server.worker",
        "wyoming_ishowtts.server.metrics",
        "wyoming_ishowtts.server.pcm",
        "wyoming_ishowtts.server.settings",
        "wyoming_ishowtts.text",
        "wyoming_ishowtts.voices",
        "wyoming_ishowtts.engine.options",
        "wyoming_ishowtts.errors",
        "wyoming_ishowtts.text",
    ),
    "wyoming_ishowtts.errors": (),
    "wyoming_ishowtts.text": ("wyoming_ishowtts.text",),
    "wyoming_ishowtts.readiness": (),
    "wyoming_ishowtts.engine": ("wyoming_ishowtts.engine", "wyoming_ishowtts.errors"),
    "wyoming_ishowtts.voices": (
        "wyoming_ishowtts.voices",
        "wyoming_ishowtts.engine",
        "wyoming_ishowtts.errors",
    ),
    "wyoming_ishowtts.tools": ("wyoming_ishowtts.tools", "wyoming_ishowtts.engine"),
}

# Light entry points and the modules they need: importing them must not import torch (the Docker health check
# runs every few seconds; the voice checker and the settings need no model).
TORCH_FREE = [
    "wyoming_ishowtts",
    "wyoming_ishowtts.engine.options",
    "wyoming_ishowtts.errors",
    "wyoming_ishowtts.healthcheck",
    "wyoming_ishowtts.readiness",
    "wyoming_ishowtts.server.cli",
    "wyoming_ishowtts.server.settings",
    "wyoming_ishowtts.voices.check",
    "wyoming_ishowtts.voices.folder",
    "wyoming_ishowtts.voices.registry",
]


# Module -> the only modules (besides its own package) that may import it.
IMPORTED_ONLY_BY = {"wyoming_ishowtts.server.studio": ("wyoming_ishowtts.server.app",)}


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(path: Path, root: Path = ROOT) -> Iterator[tuple[int, str]]:
    """(line, absolute module) for every import in the file; ``from pkg import name`` yields ``pkg.name``
    when that is a module of this project, else ``pkg``."""
    package = module_name(path, root).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            target = ".".join([*base, *([node.module] if node.module else [])])
            for alias in node.names:
                candidate = root.joinpath(*target.split("."), alias.name)
                is_module = candidate.with_suffix(".py").is_file() or candidate.is_dir()
                yield node.lineno, f"{target}.{alias.name}" if is_module else target


def exists(module: str, root: Path) -> bool:
    """A module of this project by that name is in the tree (a lazy import of a moved module is not)."""
    path = root.joinpath(*module.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def violations(root: Path = ROOT) -> list[str]:
    """Every import in ``root``/wyoming_ishowtts that breaks a rule above, as ``file:line imports x: rule``."""
    found = []
    for path in sorted((root / "wyoming_ishowtts").rglob("*.py")):
        name = module_name(path, root)
        layer = next((layer for layer in ALLOWED if within(name, layer)), None)
        for line, target in imported_modules(path, root):
            if not target.startswith(PROJECT):
                continue
            where = f"{path.relative_to(root)}:{line} imports {target}"
            if not exists(target, root):
                found.append(f"{where}: no such module")
            elif within(target, "ishowtts_dev"):
                found.append(f"{where}: the package never imports the developer tools")
            elif layer is not None and not any(within(target, allowed) for allowed in ALLOWED[layer]):
                found.append(
                    f"{where}: {layer} may import only {', '.join(ALLOWED[layer]) or 'nothing of ours'}"
                )
            for room, importers in IMPORTED_ONLY_BY.items():
                if within(target, room) and not within(name, room) and name not in importers:
                    found.append(f"{where}: only {', '.join(importers)} may import {room}")
    return found


def test_every_layer_imports_only_what_it_may() -> None:
    assert violations() == []


def test_the_check_sees_relative_lazy_and_type_checking_imports(tmp_path: Path) -> None:
    """The ways an import can hide from a quick grep, each in a scratch engine module, each caught."""
    engine = tmp_path / "wyoming_ishowtts" / "engine"
    engine.mkdir(parents=True)
    (engine / "__init__.py").write_text("")
    for package in ("server", "voices", "server/studio"):
        (tmp_path / "wyoming_ishowtts" / package).mkdir()
        (tmp_path / "wyoming_ishowtts" / package / "__init__.py").write_text("")
    (tmp_path / "ishowtts_dev").mkdir()
    (tmp_path / "ishowtts_dev" / "__init__.py").write_text("")
    (engine / "bad.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "from ..server import settings\n"
        "def lazy():\n    from ..voices import folder\n"
        "if TYPE_CHECKING:\n    import ishowtts_dev\n"
        "def moved():\n    from .errors import IShowTTSError\n"
    )
    found = violations(tmp_path)
    assert [v.split(": ")[0] for v in found] == [
        "wyoming_ishowtts/engine/bad.py:2 imports wyoming_ishowtts.server",
        "wyoming_ishowtts/engine/bad.py:4 imports wyoming_ishowtts.voices",
        "wyoming_ishowtts/engine/bad.py:6 imports ishowtts_dev",
        "wyoming_ishowtts/engine/bad.py:8 imports wyoming_ishowtts.engine.errors",
    ], found
    assert [v.split(": ")[1] for v in found][3] == "no such module"


def test_the_studio_is_a_room_of_the_server(tmp_path: Path) -> None:
    """The studio may not reach into the Wyoming protocol, and the Wyoming side may not reach into the studio."""
    server = tmp_path / "wyoming_ishowtts" / "server"
    (server / "studio").mkdir(parents=True)
    for path in (tmp_path / "wyoming_ishowtts", server, server / "studio"):
        (path / "__init__.py").write_text("")
    for module in ("handler", "worker", "app"):
        (server / f"{module}.py").write_text("")
    (server / "studio" / "page.py").write_text("from ..handler import x\nfrom ..worker import y\n")
    (server / "responder.py").write_text("from .studio import page\n")
    (server / "app.py").write_text("def start():\n    from .studio import page\n")
    found = violations(tmp_path)
    assert [v.split(": ")[0] for v in found] == [
        "wyoming_ishowtts/server/responder.py:1 imports wyoming_ishowtts.server.studio.page",
        "wyoming_ishowtts/server/studio/page.py:1 imports wyoming_ishowtts.server.handler",
    ], found


def test_the_server_imports_aiohttp_only_for_the_studio() -> None:
    """A server without ``--http-port`` does not load the HTTP stack (memory on a Jetson)."""
    code = "import sys, wyoming_ishowtts.server.app, wyoming_ishowtts.server.cli; print('aiohttp' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120, check=True
    )
    assert result.stdout.strip() == "False"


@pytest.mark.parametrize("module", TORCH_FREE)
def test_imports_without_torch(module: str) -> None:
    code = f"import sys, {module}; print('torch' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120, check=True
    )
    assert result.stdout.strip() == "False", f"importing {module} imports torch"


@pytest.mark.parametrize(
    "module",
    [
        "wyoming_ishowtts",
        "wyoming_ishowtts.synthesize",
        "wyoming_ishowtts.healthcheck",
        "wyoming_ishowtts.voices",
        "wyoming_ishowtts.tools.random_model",
    ],
)
def test_the_entry_points_users_and_images_type_still_work(module: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", module, "--help"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0 and "usage:" in result.stdout, result.stderr


# -- a request's life has one owner: server/worker.py ----------------------------------------------------

REQUEST_OWNER = "wyoming_ishowtts/server/worker.py"
QUEUE_READS = ("get", "get_nowait", "empty", "qsize")  # what else may be done with a request's `results`
FREES_A_SLOT = ("finish_request", "_finish_request")


def request_life_violations(root: Path = ROOT) -> list[str]:
    """Every place in the package outside server/worker.py that writes a request's result queue, hands the
    queue on (an alias could write it: ``q = request.results``, ``call_soon(request.results.put_nowait)``)
    or frees a request's queue slot (``finish_request``), as ``file:line what``."""
    found = []
    for path in sorted((root / "wyoming_ishowtts").rglob("*.py")):
        where = path.relative_to(root).as_posix()
        if where == REQUEST_OWNER:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
        lines: list[tuple[int, str]] = []
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr == "results":
                parent = parents.get(node)
                if not (isinstance(parent, ast.Attribute) and parent.attr in QUEUE_READS):
                    lines.append((node.lineno, "writes or hands on a result queue"))
            if isinstance(node, (ast.Attribute, ast.Name)):
                name = node.attr if isinstance(node, ast.Attribute) else node.id
                if name in FREES_A_SLOT:
                    lines.append((node.lineno, f"frees a request's slot ({name})"))
        found += [f"{where}:{line} {what}" for line, what in sorted(lines)]
    return found


def test_only_the_worker_writes_a_result_queue_or_frees_a_slot() -> None:
    assert request_life_violations() == []


def test_the_request_life_check_sees_writes_aliases_and_slot_frees(tmp_path: Path) -> None:
    """Each way of writing a result queue or freeing a slot outside the worker, in a scratch server module,
    is caught; the same lines in server/worker.py, and a read of the queue, are not."""
    server = tmp_path / "wyoming_ishowtts" / "server"
    server.mkdir(parents=True)
    code = (
        "def f(request, loop, worker):\n"
        "    request.results.put_nowait(1)\n"
        "    loop.call_soon_threadsafe(request.results.put_nowait, 2)\n"
        "    queue = request.results\n"
        "    worker.finish_request(request)\n"
        "    worker._finish_request(request)\n"
        "    return request.results.get()\n"
    )
    (server / "handler.py").write_text(code)
    (server / "worker.py").write_text(code)
    assert request_life_violations(tmp_path) == [
        "wyoming_ishowtts/server/handler.py:2 writes or hands on a result queue",
        "wyoming_ishowtts/server/handler.py:3 writes or hands on a result queue",
        "wyoming_ishowtts/server/handler.py:4 writes or hands on a result queue",
        "wyoming_ishowtts/server/handler.py:5 frees a request's slot (finish_request)",
        "wyoming_ishowtts/server/handler.py:6 frees a request's slot (_finish_request)",
    ]


# Private members of an engine -----------------------------------------------------------------------------
# Outside engine/ an engine is used through its public names only (issue 21: tests and gpu-check called
# `Engine._accelerate`). Checked in every Python file of the package, the developer tools and both test
# suites. What counts as an engine object, read from the source (no types are inferred):
#   - a name that says so (`engine`, `fake_engine`, `engine_core`, ...), and any attribute chain through one
#     (`self.engine._x`, `engine.acceleration.chunk_graphs._x`);
#   - a name the file binds to an engine: annotated `Engine`, or assigned from `Engine(...)`, `Engine.load(...)`
#     or a function of the file annotated `-> Engine` (a test's `half = load(...)`);
#   - any receiver but `self`/`cls` of a private name of the engine's own classes (`Engine`, `Acceleration`);
#   - the same by string: ``getattr``/``setattr``/``delattr``/``hasattr`` and ``monkeypatch.setattr(x, "_name")``.
# Not covered: an engine reached under another name through a container or a helper of another module, and
# the inner classes of engine modules (DiT's rotary table, `ChunkGraphs`), which their own unit tests probe.
ENGINE_CLASSES = {"engine/core.py": "Engine", "engine/acceleration.py": "Acceleration"}
CHECKED_FOR_ENGINE_PRIVATES = ("wyoming_ishowtts", "ishowtts_dev", "tests", "tests_ha")
_SAYS_ENGINE = re.compile(r"(^|_)engine($|_)", re.IGNORECASE)
_IS_ENGINE_TYPE = re.compile(r"\bEngine\b")
_BY_STRING = re.compile(r"(^|\.)(getattr|setattr|delattr|hasattr)$")


def engine_private_names(root: Path = ROOT) -> set[str]:
    """Every private name the engine's own classes define: their `_methods` and the `self._x` they assign."""
    names: set[str] = set()
    for relative, class_name in ENGINE_CLASSES.items():
        tree = ast.parse((root / "wyoming_ishowtts" / relative).read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef) and node.name == class_name:
                for inner in ast.walk(node):
                    if isinstance(inner, (ast.FunctionDef, ast.AsyncFunctionDef)):
                        names.add(inner.name)
                    elif isinstance(inner, ast.Attribute) and isinstance(inner.ctx, ast.Store):
                        names.add(inner.attr)
    return {name for name in names if name.startswith("_") and not name.endswith("__")}


def engine_bound_names(tree: ast.AST) -> set[str]:
    """The names a file binds to an engine (see above)."""
    makers = {"Engine", "Engine.load"}
    for node in ast.walk(tree):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) or node.returns is None:
            continue
        if _IS_ENGINE_TYPE.search(ast.unparse(node.returns)):
            makers.add(node.name)
    bound: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.arg) and node.annotation is not None:
            if _IS_ENGINE_TYPE.search(ast.unparse(node.annotation)):
                bound.add(node.arg)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            if _IS_ENGINE_TYPE.search(ast.unparse(node.annotation)):
                bound.add(node.target.id)
        elif isinstance(node, ast.Assign) and isinstance(node.value, ast.Call):
            called = ast.unparse(node.value.func)
            if any(called == maker or called.endswith("." + maker) for maker in makers):
                bound.update(t.id for t in node.targets if isinstance(t, ast.Name))
    return bound


def reaches_an_engine(node: ast.expr, bound: set[str]) -> bool:
    """`node` is an engine, or an attribute chain through one."""
    while isinstance(node, ast.Attribute):
        if _SAYS_ENGINE.search(node.attr):
            return True
        node = node.value
    return isinstance(node, ast.Name) and (node.id in bound or bool(_SAYS_ENGINE.search(node.id)))


def engine_private_uses(root: Path = ROOT) -> list[str]:
    """Every ``x._name`` outside engine/ where x is an engine object (see above), as ``file:line x._name``."""
    private = engine_private_names(root)
    found = []
    for top in CHECKED_FOR_ENGINE_PRIVATES:
        for path in sorted((root / top).rglob("*.py")):
            if within(module_name(path, root), "wyoming_ishowtts.engine"):
                continue
            tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
            bound = engine_bound_names(tree)
            uses = []
            for node in ast.walk(tree):
                name: object
                if isinstance(node, ast.Attribute):
                    receiver, name = node.value, node.attr
                elif (
                    isinstance(node, ast.Call) and _BY_STRING.search(ast.unparse(node.func)) and node.args[1:]
                ):
                    receiver, name = node.args[0], getattr(node.args[1], "value", None)  # monkeypatch.setattr
                else:
                    continue
                if not isinstance(name, str) or not name.startswith("_") or name.endswith("__"):
                    continue
                by_name = name in private and not (
                    isinstance(receiver, ast.Name) and receiver.id in ("self", "cls")
                )
                if by_name or reaches_an_engine(receiver, bound):
                    uses.append((node.lineno, ast.unparse(node)))
            found += [f"{path.relative_to(root)}:{line} {use}" for line, use in sorted(uses)]
    return found


def test_nothing_outside_the_engine_touches_a_private_member_of_an_engine() -> None:
    assert engine_private_uses() == []


def test_the_private_member_check_sees_engines_under_any_name(tmp_path: Path) -> None:
    """Each way an engine's private member can be reached from outside, in a scratch tree, each caught; a
    private member of something else (a worker) is not."""
    engine = tmp_path / "wyoming_ishowtts" / "engine"
    engine.mkdir(parents=True)
    (engine / "core.py").write_text(
        "class Engine:\n    def __init__(self):\n        self._files = None\n    def _accelerate(self): ...\n"
    )
    (engine / "acceleration.py").write_text("class Acceleration:\n    def _record(self): ...\n")
    (engine / "inside.py").write_text("def f(engine):\n    engine._accelerate()\n")  # the engine's own
    tests = tmp_path / "tests"
    tests.mkdir()
    (tests / "test_x.py").write_text(
        "def load() -> Engine: ...\n"
        "def a(server, worker, other):\n"
        "    half = load()\n"
        "    half._accelerate()\n"  # bound by a maker of the file
        "    server.engine._cache\n"  # a chain through a name that says engine
        "    engine.acceleration.chunk_graphs._graphs\n"
        "    other._files\n"  # an engine class's private name, whatever the receiver
        "    worker._cond\n"  # not an engine
        "    self._files\n"  # a class's own
        "def b(fp32: Engine | None):\n"
        "    fp32._whatever\n"  # annotated
        "    made = Engine.load(settings)\n"
        "    made._other\n"  # assigned from Engine.load
        "def c(monkeypatch, engine):\n"
        "    monkeypatch.setattr(engine, '_synthesize_chunks', None)\n"  # by string
        "    setattr(worker, '_cond', None)\n"
    )
    found = engine_private_uses(tmp_path)
    assert found == [
        "tests/test_x.py:4 half._accelerate",
        "tests/test_x.py:5 server.engine._cache",
        "tests/test_x.py:6 engine.acceleration.chunk_graphs._graphs",
        "tests/test_x.py:7 other._files",
        "tests/test_x.py:11 fp32._whatever",
        "tests/test_x.py:13 made._other",
        "tests/test_x.py:15 monkeypatch.setattr(engine, '_synthesize_chunks', None)",
    ], found
