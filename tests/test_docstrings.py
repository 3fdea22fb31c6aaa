"""Public functions that take more than two arguments say what each is (Args:) and what they give back.

The rule of issue 23 (BoTorch's style): a reader should not need the body to call a function with
three or more parameters. Click commands are exempt: their docstring is the `--help` text.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "svge_cli"
EXEMPT = {"commands", "cli.py"}  # Click callbacks: the docstring is the user's help text


def _params(fn: ast.FunctionDef) -> list[str]:
    names = [a.arg for a in fn.args.posonlyargs + fn.args.args + fn.args.kwonlyargs]
    return [n for n in names if n not in ("self", "cls")]


def _returns_value(fn: ast.FunctionDef) -> bool:
    r = fn.returns
    return not (r is None or (isinstance(r, ast.Constant) and r.value is None) or ast.unparse(r) == "None")


def _missing(fn: ast.FunctionDef) -> str | None:
    doc = ast.get_docstring(fn) or ""
    if "Args:" not in doc:
        return "Args:"
    if _returns_value(fn) and not any(w in doc for w in ("Returns:", "Yields:")):
        return "Returns:"
    return None


def _public_functions(tree: ast.Module) -> list[ast.FunctionDef]:
    found = [n for n in tree.body if isinstance(n, ast.FunctionDef)]
    for cls in (n for n in tree.body if isinstance(n, ast.ClassDef) and not n.name.startswith("_")):
        found += [n for n in cls.body if isinstance(n, ast.FunctionDef)]
    return [f for f in found if not f.name.startswith("_")]


def _modules() -> list[tuple[Path, ast.Module]]:
    """The package's public modules (Click commands and private files left out), parsed."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE)
        if rel.parts[0] in EXEMPT or any(p.startswith("_") and p != "__init__.py" for p in rel.parts):
            continue
        found.append((rel, ast.parse(path.read_text())))
    return found


def test_public_functions_of_three_or_more_arguments_document_them() -> None:
    gaps = []
    for rel, tree in _modules():
        for fn in _public_functions(tree):
            if len(_params(fn)) > 2 and (what := _missing(fn)):
                gaps.append(f"{rel}:{fn.lineno} {fn.name} lacks {what}")
    assert not gaps, "\n".join(gaps)


def test_public_classes_built_from_three_or_more_arguments_document_them() -> None:
    """The class docstring or its __init__'s says what each constructor argument is."""
    gaps = []
    for rel, tree in _modules():
        for cls in (n for n in tree.body if isinstance(n, ast.ClassDef) and not n.name.startswith("_")):
            init = next((n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == "__init__"), None)
            if init is None or len(_params(init)) <= 2:
                continue
            if "Args:" not in (ast.get_docstring(cls) or "") + (ast.get_docstring(init) or ""):
                gaps.append(f"{rel}:{cls.lineno} {cls.name} lacks Args:")
    assert not gaps, "\n".join(gaps)
