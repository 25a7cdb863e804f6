"""What the doc tests ask of a Python source file: whether it defines a name the docs cite."""
from __future__ import annotations

import ast


def defined(source: str, qualname: str) -> bool:
    """Whether `qualname` (Name or Class.attr...) is a class, function or (annotated) assignment in `source`."""
    body: list[ast.stmt] = ast.parse(source).body
    for part in qualname.split("."):
        found = None
        for node in body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name == part:
                found = node
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.target.id == part:
                found = node
            elif isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == part for t in node.targets):
                found = node
        if found is None:
            return False
        body = found.body if isinstance(found, ast.ClassDef) else []
    return True
