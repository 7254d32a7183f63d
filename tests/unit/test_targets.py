"""The allow-list: checked without importing anything; resolve() imports from the working directory."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from errands.errors import InvalidInput, TargetNotAllowed
from errands.targets import check_allowed, is_function_target, normalize_method, resolve


def unique_module() -> str:
    """A module name nothing has ever imported (so sys.modules proves check_allowed imported nothing)."""
    return f"errands_never_imported_{uuid.uuid4().hex}"


@pytest.fixture
def isolated_imports(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """resolve() adds the working directory to sys.path and imports: undo both after the test."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    before = set(sys.modules)
    yield
    for name in set(sys.modules) - before:
        del sys.modules[name]


def test_accepts_an_allowed_class_and_method_without_importing_it() -> None:
    module = unique_module()
    allowed = {f"{module}.Job": ["process", "send"]}
    check_allowed(f"{module}.Job", "process", allowed)
    check_allowed(f"{module}.Job", "send", allowed)
    assert module not in sys.modules


def test_accepts_an_allowed_function_target_with_an_empty_method() -> None:
    module = unique_module()
    check_allowed(f"{module}.sub:add", "", {f"{module}.sub:add": []})
    assert module not in sys.modules
    assert f"{module}.sub" not in sys.modules


@pytest.mark.parametrize(
    ("target", "method", "reason_part"),
    [
        ("{m}.Other", "process", "not in allowed_jobs"),  # unknown target
        ("{m}.Job", "delete_everything", "method not allowed"),  # unknown method
        ("{m}.Job", "_private", "public method"),  # private, even if listed
        ("{m}.Job", "__init__", "public method"),  # dunder, even if listed
        ("{m}.Job", "__class__", "public method"),
        ("{m}.Job", "", "public method"),  # a class target needs a method
        ("{m}.Job", "process;rm", "public method"),
        ("{m}.Job", "process\n", "public method"),
        ("{m}:add", "process", "takes no method"),  # a function target with a method
        ("{m}:other", "", "not in allowed_jobs"),  # unknown function
        ("{m}.Job:process", "", "not in allowed_jobs"),  # a class spelled as a function
    ],
)
def test_refuses_without_importing(target: str, method: str, reason_part: str) -> None:
    module = unique_module()
    allowed = {f"{module}.Job": ["process", "_private", "__init__", "__class__"], f"{module}:add": []}
    with pytest.raises(TargetNotAllowed) as caught:
        check_allowed(target.format(m=module), method, allowed)
    assert reason_part in caught.value.reason
    assert caught.value.target == target.format(m=module)
    assert caught.value.method == method
    assert module not in sys.modules


@pytest.mark.parametrize(
    "target",
    [
        "os",
        "os;rm",
        "a..b",
        "x:y:z",
        ".os.path",
        "os.path.",
        "1abc.Job",
        "os path.Job",
        "pkg.mod:",
        ":func",
        "",
        "os.path\n",
    ],
)
def test_refuses_malformed_names_even_when_listed(target: str) -> None:
    with pytest.raises(TargetNotAllowed) as caught:
        check_allowed(target, "system" if ":" not in target else "", {target: ["system"]})
    assert "not a valid target" in caught.value.reason


def test_refuses_os_system_even_when_listed_as_a_module() -> None:
    with pytest.raises(TargetNotAllowed):
        check_allowed("os", "system", {"os": ["system"]})


def test_refusal_is_an_invalid_input_with_a_clear_message() -> None:
    with pytest.raises(InvalidInput, match=r"^refused os\.path::system: not in allowed_jobs$"):
        check_allowed("os.path", "system", {})


def test_function_targets_and_method_normalization() -> None:
    assert is_function_target("pkg.mod:func")
    assert not is_function_target("pkg.mod.Class")
    assert normalize_method("pkg.mod:func", "-") == ""
    assert normalize_method("pkg.mod:func", "") == ""
    assert normalize_method("pkg.mod:func", "run") == "run"  # left for check_allowed to refuse
    assert normalize_method("pkg.mod.Class", "-") == "-"


# resolve ------------------------------------------------------------------------------------------------

JOB_MODULE = """
CREATED = []


class Worker:
    def __init__(self):
        CREATED.append(self)
        self.factor = 3

    def triple(self, x):
        return x * self.factor

    def _hidden(self):
        return "hidden"


def add(a, b):
    return a + b


NOT_CALLABLE = 42
NOT_A_CLASS = add
"""


@pytest.fixture
def job_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, isolated_imports: None) -> str:
    name = unique_module()
    (tmp_path / f"{name}.py").write_text(JOB_MODULE)
    monkeypatch.chdir(tmp_path)
    return name


def test_resolve_instantiates_a_class_with_no_arguments_from_the_working_directory(job_module: str) -> None:
    target = f"{job_module}.Worker"
    instance, func = resolve(target, "triple", {target: ["triple"]})
    assert func(5) == 15
    module = sys.modules[job_module]
    assert module.CREATED == [instance]
    assert type(instance).__name__ == "Worker"
    # a second resolve makes a fresh instance
    other, _ = resolve(target, "triple", {target: ["triple"]})
    assert other is not instance
    assert len(module.CREATED) == 2


def test_resolve_a_function_target(job_module: str) -> None:
    target = f"{job_module}:add"
    instance, func = resolve(target, "", {target: []})
    assert instance is None
    assert func(2, 3) == 5


def test_resolve_checks_before_importing(job_module: str) -> None:
    with pytest.raises(TargetNotAllowed):
        resolve(f"{job_module}.Worker", "_hidden", {f"{job_module}.Worker": ["_hidden"]})
    with pytest.raises(TargetNotAllowed):
        resolve(f"{job_module}.Worker", "triple", {})
    assert job_module not in sys.modules


def test_resolve_refuses_what_is_not_a_class_or_callable(job_module: str) -> None:
    with pytest.raises(TargetNotAllowed, match="not a class"):
        resolve(f"{job_module}.NOT_A_CLASS", "x", {f"{job_module}.NOT_A_CLASS": ["x"]})
    with pytest.raises(TargetNotAllowed, match="not a callable"):
        resolve(f"{job_module}:NOT_CALLABLE", "", {f"{job_module}:NOT_CALLABLE": []})
    with pytest.raises(TargetNotAllowed, match="no such method"):
        resolve(f"{job_module}.Worker", "missing", {f"{job_module}.Worker": ["missing"]})


def test_resolve_of_a_missing_module_raises_import_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, isolated_imports: None
) -> None:
    monkeypatch.chdir(tmp_path)
    name = unique_module()
    with pytest.raises(ModuleNotFoundError):
        resolve(f"{name}:f", "", {f"{name}:f": []})
