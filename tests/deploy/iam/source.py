"""The package's source as data: modules, functions, classes, what a name refers to."""

from __future__ import annotations

import ast
import inspect
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.deploy.iam.rules import MODE_ENUM, PKG, PKG_DIR, PORTS, PRODUCTION_MODE

# --- parsing the package ----------------------------------------------------------------------


@dataclass
class Func:
    qualname: str  # module:name or module:Class.name
    module: str
    cls: str | None
    node: ast.FunctionDef | ast.AsyncFunctionDef

    @property
    def params(self) -> list[str]:
        a = self.node.args
        names = [p.arg for p in [*a.posonlyargs, *a.args, *a.kwonlyargs]]
        return names[1:] if self.cls and names[:1] == ["self"] else names


@dataclass
class Klass:
    qualname: str
    module: str
    node: ast.ClassDef
    bases: list[str] = field(default_factory=list)  # resolved package classes
    methods: dict[str, str] = field(default_factory=dict)  # name -> Func.qualname


class Package:
    def __init__(self, root: Path = PKG_DIR) -> None:
        self.funcs: dict[str, Func] = {}
        self.classes: dict[str, Klass] = {}
        self.imports: dict[str, dict[str, str]] = {}
        self.modules: dict[str, ast.Module] = {}
        for path in sorted(root.rglob("*.py")):
            if "grpc_gen" in path.parts:
                continue
            rel = path.relative_to(root.parent).with_suffix("")
            parts = list(rel.parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            self._add_module(".".join(parts), ast.parse(path.read_text()))
        for k in self.classes.values():
            k.bases = [
                b
                for b in (self.resolve(k.module, None, base) for base in k.node.bases)
                if b and b in self.classes
            ]

    def _add_module(self, module: str, tree: ast.Module) -> None:
        self.modules[module] = tree
        self.imports[module] = _imports(module, tree.body)
        for node in tree.body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                q = f"{module}:{node.name}"
                self.funcs[q] = Func(q, module, None, node)
            elif isinstance(node, ast.ClassDef):
                kq = f"{module}:{node.name}"
                klass = Klass(kq, module, node)
                for item in node.body:
                    if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
                        q = f"{kq}.{item.name}"
                        self.funcs[q] = Func(q, module, node.name, item)
                        klass.methods[item.name] = q
                self.classes[kq] = klass

    def local_names(self, module: str, func: Func | None) -> dict[str, str]:
        names = {
            n.name: f"{module}:{n.name}"
            for n in self.modules[module].body
            if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
        }
        names.update(self.imports[module])
        if func is not None:  # imports inside the function ("imported where used")
            names.update(_imports(module, ast.walk(func.node)))
        return names

    def resolve(self, module: str, func: Func | None, node: ast.expr) -> str | None:
        """The package object a name or dotted attribute refers to, as module:name."""
        names = self.local_names(module, func)
        if isinstance(node, ast.Name):
            target = names.get(node.id)
            return target if target and target.split(":")[0].startswith(PKG) else None
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            mod = names.get(node.value.id)
            if mod and ":" not in mod and mod.startswith(PKG):
                return f"{mod}:{node.attr}"
        return None

    def method(self, klass: str, name: str) -> Func | None:
        """A method of a package class, inherited ones included."""
        k = self.classes.get(klass)
        if k is None:
            return None
        if name in k.methods:
            return self.funcs[k.methods[name]]
        for base in k.bases:
            found = self.method(base, name)
            if found:
                return found
        return None

    def all_methods(self, klass: str) -> list[Func]:
        k = self.classes[klass]
        seen = {n: self.funcs[q] for n, q in k.methods.items()}
        for base in k.bases:
            for f in self.all_methods(base):
                seen.setdefault(f.node.name, f)
        return list(seen.values())

    def class_of(self, f: Func) -> str | None:
        return f"{f.module}:{f.cls}" if f.cls else None


def _imports(module: str, nodes: Iterable[ast.AST]) -> dict[str, str]:
    out: dict[str, str] = {}
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and node.module is not None:
            base = node.module
            if node.level:  # relative import
                pkg = module.split(".")[: -node.level] if node.level else []
                base = ".".join([*pkg, node.module])
            for alias in node.names:
                out[alias.asname or alias.name] = f"{base}:{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                out[alias.asname or alias.name.split(".")[0]] = alias.name
    # "from datatorag.x import y" where y is a module
    return out


def body_nodes(func: Func) -> Iterator[ast.AST]:
    """Nodes of the function's body, annotations left out (types are not calls), and the
    branches only the embedded mode takes left out (see ``production_branches``)."""
    todo: list[ast.AST] = list(reversed(func.node.body))
    while todo:
        node = todo.pop()
        if not isinstance(node, ast.AnnAssign):
            yield node
        todo.extend(reversed(production_branches(node)))


def _is_production(test: ast.expr) -> bool | None:
    """True for ``<x>.mode is Mode.PRODUCTION`` (or ``is not Mode.EMBEDDED``), False for the
    embedded test, None for any other condition."""
    if not (
        isinstance(test, ast.Compare)
        and len(test.ops) == 1
        and isinstance(test.left, ast.Attribute)
        and test.left.attr == "mode"
    ):
        return None
    mode = test.comparators[0]
    if not (
        isinstance(mode, ast.Attribute)
        and isinstance(mode.value, ast.Name)
        and mode.value.id == MODE_ENUM
    ):
        return None
    if isinstance(test.ops[0], ast.Is | ast.Eq):
        negated = False
    elif isinstance(test.ops[0], ast.IsNot | ast.NotEq):
        negated = True
    else:
        return None
    return (mode.attr == PRODUCTION_MODE) != negated


def production_branches(node: ast.AST) -> list[ast.AST]:
    """The children of a node that production code runs: both branches of an ordinary ``if``,
    only the production one of an ``if`` (or ``x if ... else y``) on ``settings.mode``."""
    if isinstance(node, ast.If | ast.IfExp):
        production = _is_production(node.test)
        if production is not None:
            branch = node.body if production else node.orelse
            return [node.test, *(branch if isinstance(branch, list) else [branch])]
    return list(ast.iter_child_nodes(node))


def receiver(node: ast.expr) -> tuple[str, str | None] | None:
    """The port-like name an attribute is read from, and a literal subscript if any:
    ``self.deps.registry`` -> (registry, None), ``self.queues["parse"]`` -> (queues, parse)."""
    literal = None
    if isinstance(node, ast.Subscript):
        if isinstance(node.slice, ast.Constant) and isinstance(node.slice.value, str):
            literal = node.slice.value
        node = node.value
    if isinstance(node, ast.Attribute):
        return node.attr.lstrip("_"), literal
    if isinstance(node, ast.Name):
        return node.id.lstrip("_"), literal
    return None


def port_methods(kind: str) -> frozenset[str]:
    cls = PORTS[kind]
    return frozenset(
        n
        for n, _ in inspect.getmembers(cls)
        if not n.startswith("_") and n not in ("name", "max_receives", "visibility_timeout_s")
    )
