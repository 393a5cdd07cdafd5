"""The package's layers import one way (docs/architecture.md): import-linter's contract in
.importlinter, and no import cycle between any two files, function-level imports included."""

from __future__ import annotations

from pathlib import Path

import grimp
from importlinter import configuration
from importlinter.application import use_cases

REPO = Path(__file__).resolve().parents[2]


def test_the_layers_contract_is_kept():
    configuration.configure()  # what the lint-imports command sets up first
    assert use_cases.lint_imports(config_filename=str(REPO / ".importlinter"), no_logo=True), \
        "a module imports from a layer above its own: see the lines above and docs/architecture.md"


def test_no_two_files_import_each_other_even_through_others():
    graph = grimp.build_graph("digit_recognizer")  # every import statement, inside functions too
    imports = {module: graph.find_modules_directly_imported_by(module) for module in graph.modules}
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> None:
        if module in path:
            cycle = path[path.index(module):] + [module]
            raise AssertionError("import cycle: " + " -> ".join(cycle))
        if module in done:
            return
        for imported in imports[module]:
            visit(imported, [*path, module])
        done.add(module)

    for module in sorted(imports):
        visit(module, [])


def test_a_new_upward_import_breaks_the_contract():
    """The contract can fail: the data layer importing the LightningModule is reported."""
    graph = grimp.build_graph("digit_recognizer")
    graph.add_import(importer="digit_recognizer.data.split", imported="digit_recognizer.classifier")
    layers = [line.strip() for line in (REPO / ".importlinter").read_text().split("layers =", 1)[1].splitlines()
              if line.strip().startswith("digit_recognizer")]
    illegal = graph.find_illegal_dependencies_for_layers(
        layers=[set(layer.split(" | ")) for layer in layers], containers=set())
    assert any(d.importer == "digit_recognizer.data" and d.imported == "digit_recognizer.classifier" for d in illegal)
