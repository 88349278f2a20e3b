"""What one service's code does: the functions its entry points reach, the adapters it builds,
the port calls it makes (bound to a queue and a blob prefix where the code says which), and its
direct AWS calls."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass, field

from tests.deploy.iam.aws_calls import AwsWalker, Call
from tests.deploy.iam.rules import (
    ACCESSORS,
    BLOB_CHECK_PREFIX,
    BLOB_PREFIXES,
    COMPONENTS,
    COMPONENTS_FOLLOWED,
    COMPONENTS_NAMES,
    DIRECT_TARGETS,
    FACTORY,
    LOGICAL_QUEUES,
    OPAQUE,
    RECEIVERS,
    DerivationError,
    Service,
)
from tests.deploy.iam.source import Func, Package, body_nodes, port_methods, receiver

# --- a service's closure and what it touches ---------------------------------------------------


@dataclass
class Usage:
    """What one service's code does with ports and AWS."""

    funcs: set[str] = field(default_factory=set)
    built: set[str] = field(default_factory=set)  # queue:<logical>, registry, blobstore, index
    # (port kind, logical queue or None, method, where, blob prefixes)
    port_calls: set[tuple[str, str | None, str, str, frozenset[str]]] = field(default_factory=set)
    direct: set[tuple[str, Call]] = field(default_factory=set)  # (target group, call)

    @property
    def prefixes(self) -> set[str]:
        return {p for *_, prefixes in self.port_calls for p in prefixes}


def _opaque(qualname: str) -> bool:
    if qualname in {f"{COMPONENTS}.{m}" for m in COMPONENTS_FOLLOWED}:
        return False
    return any(qualname.startswith(o) for o in OPAQUE)


def _names_components(expr: ast.expr | None) -> bool:
    """``Components``, ``bootstrap.Components`` or ``"Components"`` (an annotation, a call)."""
    if expr is None:
        return False
    text = ast.unparse(expr).strip("'\"")
    return text.split(".")[-1] == COMPONENTS.split(":")[-1]


def _is_components(pkg: Package, func: Func, expr: ast.expr) -> bool:
    """Whether ``c`` in ``c.registry`` is the process's Components (a parameter annotated so,
    one assigned ``Components(...)``, ``self.c`` stored from such a parameter, ``self`` inside
    Components), and not a chunk ``c`` of a loop. Refuses to guess."""
    klass = pkg.class_of(func)
    if isinstance(expr, ast.Name) and expr.id == "self":
        return klass == COMPONENTS
    rec = receiver(expr)
    if rec is None or rec[0] not in COMPONENTS_NAMES or isinstance(expr, ast.Subscript):
        return False
    if isinstance(expr, ast.Attribute):
        init = pkg.method(klass, "__init__") if klass else None
        if not (isinstance(expr.value, ast.Name) and expr.value.id == "self" and init):
            raise DerivationError(
                f"{func.qualname}: cannot tell whether {ast.unparse(expr)} is a Components"
            )
        a = init.node.args
        return any(
            _names_components(p.annotation) and expr.attr in _stored_as(init, p.arg)
            for p in [*a.posonlyargs, *a.args, *a.kwonlyargs]
        )
    name = rec[0] if isinstance(expr, ast.Name) else None
    a = func.node.args
    for p in [*a.posonlyargs, *a.args, *a.kwonlyargs]:
        if p.arg == name:
            if p.annotation is None:
                raise DerivationError(f"{func.qualname}: annotate {name} (is it a Components?)")
            return _names_components(p.annotation)
    for node in body_nodes(func):
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == name for t in node.targets
        ):
            value = node.value
            return isinstance(value, ast.Call) and _names_components(value.func)
        targets: list[ast.expr] = []
        if isinstance(node, ast.For | ast.AsyncFor | ast.comprehension):
            targets = [node.target]
        if any(isinstance(n, ast.Name) and n.id == name for t in targets for n in ast.walk(t)):
            return False  # a loop variable
    raise DerivationError(f"{func.qualname}: cannot tell whether {name} is a Components")


def _direct_group(qualname: str) -> str | None:
    for prefix, group in DIRECT_TARGETS.items():
        if qualname.startswith(prefix if prefix.endswith(":") else prefix + "."):
            return group
    return None


def closure(pkg: Package, service: Service) -> tuple[set[str], set[str]]:
    """Functions a service runs, and the adapters it builds through the factory."""
    funcs: set[str] = set()
    built: set[str] = set()
    todo = list(service.entries)
    while todo:
        q = todo.pop()
        if q in funcs or _opaque(q):
            if q.startswith("datatorag.bootstrap.factory:") and q.split(":")[1] in FACTORY:
                kind = FACTORY[q.split(":")[1]]
                built |= {f"queue:{lq}" for lq in LOGICAL_QUEUES} if kind == "queue" else {kind}
            continue
        if q in pkg.classes:
            todo += [m.qualname for m in pkg.all_methods(q)]
            continue
        if q not in pkg.funcs:
            continue
        funcs.add(q)
        func = pkg.funcs[q]
        for node in body_nodes(func):
            if isinstance(node, ast.Name | ast.Attribute):
                ref = pkg.resolve(func.module, func, node)
                if ref:
                    todo.append(ref)
            if (
                isinstance(node, ast.Attribute)
                and node.attr in COMPONENTS_FOLLOWED
                and _is_components(pkg, func, node.value)
            ):
                todo.append(f"{COMPONENTS}.{node.attr}")
    return funcs, built


def service_usage(pkg: Package, service: Service) -> Usage:
    funcs, built = closure(pkg, service)
    usage = Usage(funcs=funcs, built=built)
    bindings = _queue_bindings(pkg, funcs)
    for q in sorted(funcs):
        _scan(pkg, pkg.funcs[q], usage, bindings)
    for b in list(usage.built):
        usage.port_calls |= _components_calls(pkg, b)
    return usage


def _scan(pkg: Package, func: Func, usage: Usage, bindings: dict[tuple[str, str], str]) -> None:
    klass = pkg.class_of(func)
    for node in body_nodes(func):
        if isinstance(node, ast.Call):
            usage.built |= {f"queue:{lq}" for lq in _queue_literals(node)}
        if isinstance(node, ast.Attribute):
            _port_call(pkg, node, func, klass, usage, bindings)
            _accessor(pkg, func, node, usage)
    group = _direct_group(func.qualname)
    if group is not None:
        for call in AwsWalker(pkg).calls(func):
            usage.direct.add((group, call))
    elif _makes_aws_calls(pkg, func):
        raise DerivationError(
            f"{func.qualname} calls AWS directly: add it to DIRECT_TARGETS with what it touches"
        )


def _makes_aws_calls(pkg: Package, func: Func) -> bool:
    walker = AwsWalker(pkg)
    services = walker.services_of(func)
    return bool(services) and any(
        walker._aws_call(func, node, services, {})
        for node in body_nodes(func)
        if isinstance(node, ast.Call)
    )


def _port_call(
    pkg: Package,
    node: ast.Attribute,
    func: Func,
    klass: str | None,
    usage: Usage,
    bindings: dict[tuple[str, str], str],
) -> None:
    rec = receiver(node.value)
    if rec is None:
        return
    name, literal = rec
    kind = RECEIVERS.get(name)
    if kind is None or node.attr not in port_methods(kind):
        return
    where = f"{func.qualname}:{node.lineno}"
    logical: str | None = None
    prefixes: frozenset[str] = frozenset()
    if kind == "queue":
        logical = literal
        if logical is None and klass and isinstance(node.value, ast.Attribute):
            logical = bindings.get((klass, name))
    elif kind == "blobstore" and node.attr == "check":
        prefixes = frozenset({BLOB_CHECK_PREFIX})
    elif kind == "blobstore" and node.attr != "close":
        call = _call_of(func, node)
        if call is None or not call.args:
            raise DerivationError(f"{where}: a blob store call without a key")
        prefixes = frozenset(_key_prefixes(pkg, call.args[0], func, usage.funcs, where, 3))
    usage.port_calls.add((kind, logical, node.attr, where, prefixes))


def _call_of(func: Func, attr: ast.Attribute) -> ast.Call | None:
    for node in body_nodes(func):
        if isinstance(node, ast.Call) and node.func is attr:
            return node
    return None


def _key_prefixes(
    pkg: Package,
    expr: ast.expr,
    func: Func,
    funcs: set[str],
    where: str,
    depth: int,
    scope: dict[str, ast.expr] | None = None,
) -> set[str]:
    """The blob prefixes a key expression can carry: ``message.blob_key`` (raw),
    ``chunks_key(...)``, a variable assigned from one, a parameter (its callers' arguments),
    a key method of a store class named in BLOB_PREFIXES. A collection of keys carries its
    elements' prefixes: ``sorted(keys)``, ``{v.blob_key for v in versions}``, a loop variable
    over one, and the keys ``blobstore.list(prefix)`` yields carry the prefix's."""
    scope = scope or {}
    if isinstance(expr, ast.Attribute) and expr.attr in BLOB_PREFIXES:
        return {BLOB_PREFIXES[expr.attr]}
    if isinstance(expr, ast.Call):
        ref = pkg.resolve(func.module, func, expr.func)
        if ref and ref.split(":")[1] in BLOB_PREFIXES:
            return {BLOB_PREFIXES[ref.split(":")[1]]}
        if func.cls in BLOB_PREFIXES:  # self.key(...) of the cursor store
            return {BLOB_PREFIXES[func.cls]}
        listed = (
            isinstance(expr.func, ast.Attribute)
            and expr.func.attr == "list"
            and (rec := receiver(expr.func.value)) is not None
            and RECEIVERS.get(rec[0]) == "blobstore"
        )
        same = isinstance(expr.func, ast.Name) and expr.func.id in _SAME_KEYS
        if (listed or same) and len(expr.args) == 1 and not expr.keywords:
            return _key_prefixes(pkg, expr.args[0], func, funcs, where, depth, scope)
    if isinstance(expr, ast.SetComp | ast.ListComp | ast.GeneratorExp):
        inner = dict(scope)
        for gen in expr.generators:
            if isinstance(gen.target, ast.Name):
                inner[gen.target.id] = gen.iter
        return _key_prefixes(pkg, expr.elt, func, funcs, where, depth, inner)
    if isinstance(expr, ast.Name) and expr.id in scope:
        return _key_prefixes(pkg, scope[expr.id], func, funcs, where, depth)
    if isinstance(expr, ast.Name) and depth > 0:
        assigned: list[ast.expr] = []
        for n in body_nodes(func):
            if (
                isinstance(n, ast.Assign)
                and any(isinstance(t, ast.Name) and t.id == expr.id for t in n.targets)
            ) or (  # keys |= {...}
                isinstance(n, ast.AugAssign)
                and isinstance(n.target, ast.Name)
                and n.target.id == expr.id
            ):
                assigned.append(n.value)
            elif (
                isinstance(n, ast.For | ast.AsyncFor)
                and isinstance(n.target, ast.Name)
                and n.target.id == expr.id
            ):
                assigned.append(n.iter)  # a loop over keys
        if assigned:
            return set().union(
                *(_key_prefixes(pkg, v, func, funcs, where, depth - 1) for v in assigned)
            )
        if expr.id in func.params:
            out: set[str] = set()
            for caller, arg in _call_sites(pkg, func, expr.id, funcs):
                out |= _key_prefixes(pkg, arg, caller, funcs, where, depth - 1)
            if out:
                return out
    raise DerivationError(
        f"{where}: cannot tell which blob prefix this key has; name it in BLOB_PREFIXES"
    )


# builtins that return the keys they are given
_SAME_KEYS = frozenset({"sorted", "list", "set", "tuple", "frozenset"})


def _call_sites(
    pkg: Package, func: Func, param: str, funcs: set[str]
) -> Iterator[tuple[Func, ast.expr]]:
    index = func.params.index(param)
    for q in sorted(funcs):
        caller = pkg.funcs[q]
        for node in body_nodes(caller):
            if not isinstance(node, ast.Call):
                continue
            if pkg.resolve(caller.module, caller, node.func) != func.qualname:
                continue
            if index < len(node.args):
                yield caller, node.args[index]
            for kw in node.keywords:
                if kw.arg == param:
                    yield caller, kw.value


def _accessor(pkg: Package, func: Func, node: ast.Attribute, usage: Usage) -> None:
    """``c.registry``, ``c.index()``, ``c.stage_deps()`` on a Components."""
    if node.attr not in (*ACCESSORS, "stage_deps") or node.attr == "queue":
        return
    if not _is_components(pkg, func, node.value):
        return
    if node.attr == "stage_deps":
        usage.built |= {"registry", "blobstore"}
    else:
        usage.built.add(node.attr)


def _queue_literals(node: ast.AST) -> set[str]:
    """Logical names given to ``c.queue(...)``: a literal, else every logical queue."""
    out: set[str] = set()
    for call in ast.walk(node):
        if (
            isinstance(call, ast.Call)
            and isinstance(call.func, ast.Attribute)
            and call.func.attr == "queue"
            and (r := receiver(call.func.value))
            and r[0] in ("c", "components")
            and call.args
        ):
            arg = call.args[0]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                out.add(arg.value)
            else:  # a variable: every logical queue it could be
                out |= set(LOGICAL_QUEUES)
    return out


def _queue_bindings(pkg: Package, funcs: set[str]) -> dict[tuple[str, str], str]:
    """(class, attribute) -> logical queue, from ``Cls(..., param=c.queue("x"))`` calls in the
    service's code whose class stores the parameter as ``self.<attr> = <param>``."""
    out: dict[tuple[str, str], str] = {}
    for q in sorted(funcs):
        f = pkg.funcs[q]
        for call in body_nodes(f):
            if not isinstance(call, ast.Call):
                continue
            cls = pkg.resolve(f.module, f, call.func)
            if cls not in pkg.classes:
                continue
            init = pkg.method(cls, "__init__")
            if init is None:
                continue
            args = [(init.params[i], a) for i, a in enumerate(call.args) if i < len(init.params)]
            args += [(kw.arg, kw.value) for kw in call.keywords if kw.arg]
            for param, value in args:
                literals = _queue_literals(value) if isinstance(value, ast.Call) else set()
                if len(literals) != 1:
                    continue
                for attr in _stored_as(init, param):
                    if out.get((cls, attr), literals) != literals:
                        raise DerivationError(f"{cls}.{attr} is bound to two queues")
                    out[(cls, attr)] = next(iter(literals))
    return out


def _stored_as(init: Func, param: str) -> set[str]:
    return {
        t.attr.lstrip("_")
        for node in ast.walk(init.node)
        if isinstance(node, ast.Assign)
        and isinstance(node.value, ast.Name)
        and node.value.id == param
        for t in node.targets
        if isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name) and t.value.id == "self"
    }


def _components_calls(
    pkg: Package, built: str
) -> set[tuple[str, str | None, str, str, frozenset[str]]]:
    """The port methods Components calls on an adapter it builds (readiness checks, ensure)."""
    kind, _, logical = built.partition(":")
    accessor = pkg.method(COMPONENTS, ACCESSORS[kind])
    if accessor is None:
        raise DerivationError(f"Components has no accessor for {kind}")
    methods = port_methods(kind)
    out: set[tuple[str, str | None, str, str, frozenset[str]]] = set()
    for node in ast.walk(accessor.node):
        if isinstance(node, ast.Attribute) and node.attr in methods:
            rec = receiver(node.value)
            if rec and rec[0] != "self":
                prefixes = frozenset(
                    {BLOB_CHECK_PREFIX} if kind == "blobstore" and node.attr == "check" else ()
                )
                out.add((kind, logical or None, node.attr, accessor.qualname, prefixes))
    return out
