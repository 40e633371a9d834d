"""Every public function is annotated and has a complete numpydoc docstring.

The docstring must have the sections STYLE.md asks for and document every
parameter of the signature; the signature must annotate every parameter and
the return. Each compiled module ships a ``.pyi`` stub beside it.
"""
import importlib.resources
import inspect
import re

import pytest

import cyconv

SECTIONS = ("Parameters", "Returns", "Raises", "Notes", "Examples")


def _sections(doc):
    """Map each numpydoc section header (a line followed by a dashed line) to its lines."""
    lines = inspect.cleandoc(doc).splitlines()
    sections, current = {}, None
    for i, line in enumerate(lines):
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        if line.strip() and re.fullmatch(r"-{3,}", nxt.strip()) and len(nxt.strip()) >= len(line.strip()):
            current = line.strip()
            sections[current] = []
        elif current is not None and not re.fullmatch(r"-{3,}", line.strip()):
            sections[current].append(line)
    return sections


def _documented(parameter_lines):
    """Names in ``name : type`` or ``a, b : type`` lines at the section's indentation."""
    names = set()
    body = [line for line in parameter_lines if line.strip()]
    if not body:
        return names
    indent = min(len(line) - len(line.lstrip()) for line in body)
    for line in body:
        match = re.fullmatch(r"([\w*]+(?:, [\w*]+)*) : \S.*", line.strip())
        if len(line) - len(line.lstrip()) == indent and match:
            names.update(name.lstrip("*") for name in match[1].split(", "))
    return names


@pytest.mark.parametrize("name", cyconv.__all__)
def test_docstring_sections(name):
    sections = _sections(getattr(cyconv, name).__doc__ or "")
    missing = [s for s in SECTIONS if s not in sections]
    assert not missing, f"cyconv.{name} docstring lacks sections {missing}"
    for s in SECTIONS:
        assert any(line.strip() for line in sections[s]), f"cyconv.{name}: empty {s} section"


@pytest.mark.parametrize("name", cyconv.__all__)
def test_every_parameter_documented(name):
    func = getattr(cyconv, name)
    documented = _documented(_sections(func.__doc__ or "").get("Parameters", []))
    params = set(inspect.signature(func).parameters)
    assert params - documented == set(), f"cyconv.{name}: undocumented {params - documented}"
    assert documented - params == set(), f"cyconv.{name}: documents unknown {documented - params}"


@pytest.mark.parametrize("name", cyconv.__all__)
def test_signature_annotated(name):
    sig = inspect.signature(getattr(cyconv, name))
    bare = [p.name for p in sig.parameters.values() if p.annotation is inspect.Parameter.empty]
    assert not bare, f"cyconv.{name}: parameters without annotations {bare}"
    assert sig.return_annotation is not inspect.Signature.empty, f"cyconv.{name}: no return annotation"


def test_py_typed_and_stubs_installed():
    package = importlib.resources.files("cyconv")
    assert package.joinpath("py.typed").is_file()
    compiled = {entry.name.split(".")[0] for entry in package.iterdir()
                if entry.name.endswith((".so", ".pyd"))}
    assert compiled, "no compiled modules found beside cyconv/__init__.py"
    missing = sorted(m for m in compiled if not package.joinpath(m + ".pyi").is_file())
    assert not missing, f"compiled modules without a .pyi stub: {missing}"
