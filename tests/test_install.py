"""What `pip install -e .` and its extras put beside each other (pyproject.toml, evaluated as pip does)."""

import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

PROJECT = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())["project"]
LINUX_X86 = {"sys_platform": "linux", "platform_machine": "x86_64", "platform_system": "Linux",
             "python_version": "3.11", "python_full_version": "3.11.7", "os_name": "posix",
             "implementation_name": "cpython", "platform_python_implementation": "CPython"}


def requirements(extras: tuple[str, ...], environment: dict) -> dict[str, Requirement]:
    """The project's own requirements that apply for these extras on this platform, by package name."""
    lines = list(PROJECT["dependencies"])
    for extra in extras:
        lines += PROJECT["optional-dependencies"][extra]
    applied = [Requirement(line) for line in lines]
    return {r.name: r for r in applied if r.marker is None or r.marker.evaluate({**environment, "extra": ""})}


@pytest.mark.parametrize("extras", [(), ("test",), ("gpu",), ("jax-gpu",), ("gpu", "test")])
@pytest.mark.parametrize("platform", [LINUX_X86, {**LINUX_X86, "sys_platform": "darwin", "platform_machine": "arm64",
                                                  "platform_system": "Darwin"}])
def test_one_tensorflow_package_whatever_the_extras(extras, platform):
    names = requirements(extras, platform)
    assert "tensorflow" in names
    assert "tensorflow-cpu" not in names  # two wheels sharing one package folder break each other


def test_the_gpu_extras_add_the_cuda_builds_on_linux():
    assert "and-cuda" in requirements(("gpu",), LINUX_X86)["tensorflow"].extras
    assert "cuda12" in requirements(("jax-gpu",), LINUX_X86)["jax"].extras
    assert "and-cuda" not in requirements((), LINUX_X86)["tensorflow"].extras
