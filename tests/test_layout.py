from pathlib import Path

TESTS = Path(__file__).parent


def test_test_module_basenames_are_unique():
    # pytest's default import mode keys test modules by basename: duplicates fail collection.
    names = [p.name for p in TESTS.rglob("*.py") if p.name != "conftest.py" and p.name != "__init__.py"]
    dupes = sorted({n for n in names if names.count(n) > 1})
    assert not dupes, f"rename these test modules, their basenames clash: {dupes}"
