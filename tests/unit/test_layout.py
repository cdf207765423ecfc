"""The broker's layering, checked on the source (issue: protocol-neutral broker core):
in odradek/broker only the front ends (grpc/, later kafka/) and peers/ may import grpc or
the generated protobuf modules, no import cycle runs through the broker's modules, and
no broker module is longer than one can read at once."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BROKER = ROOT / "odradek" / "broker"
FRONT_ENDS = ("grpc", "kafka", "peers")
MAX_LINES = 600


def imported_modules(path: Path) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
            out.update(f"{node.module}.{alias.name}" for alias in node.names)
    return out


def is_protocol(module: str) -> bool:
    return module == "grpc" or module.startswith(("grpc.", "grpc_", "odradek.v1"))


def test_only_front_ends_and_peers_speak_grpc() -> None:
    offenders = set()
    for path in BROKER.rglob("*.py"):
        rel = path.relative_to(BROKER).as_posix()
        if rel.split("/")[0] in FRONT_ENDS:
            continue
        if any(is_protocol(m) for m in imported_modules(path)):
            offenders.add(rel)
    assert not offenders, f"gRPC or protobuf imported in the core: {sorted(offenders)}"


def test_broker_modules_are_short() -> None:
    long = {p.relative_to(BROKER).as_posix(): n for p in BROKER.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"over {MAX_LINES} lines: {long}"


def test_no_import_cycle_among_broker_modules() -> None:
    names = {p: "odradek." + ".".join(p.relative_to(ROOT / "odradek").with_suffix("").parts)
             for p in BROKER.rglob("*.py")}
    modules = {name.removesuffix(".__init__"): path for path, name in names.items()}
    graph = {m: {i for i in imported_modules(p) if i in modules and i != m}
             for m, p in modules.items()}
    # Imports under TYPE_CHECKING are still edges here: a cycle is a cycle to a reader.
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        path.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                cycle = path[path.index(n):] + [n]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if n not in state:
                visit(n)
        path.pop()
        state[m] = 2

    for m in sorted(modules):
        if m not in state:
            visit(m)
