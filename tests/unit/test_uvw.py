"""uvw.py, the README's way to uv on any machine with python3: it runs uv from PATH when
there is one, else fetches uv once (pip --target, or the wheel from PyPI checked against
its sha256) into .cache/uvw beside it, and hands its arguments on. PyPI is a loopback
server here; the fetched "uv" is a shell script that says how it was called."""

from __future__ import annotations

import ast
import asyncio
import os
import platform
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import uvw
from tests.support.pypi_server import LoopbackPyPI, fake_uv_wheel

ROOT = Path(__file__).resolve().parents[2]
VERSION = uvw.UV_VERSION
FETCHED = '#!/bin/sh\necho "fetched uv: $*"\n'

pytestmark = pytest.mark.skipif(os.name == "nt", reason="the fake uv is a shell script")


def this_machines_tag() -> str:
    """The platform tag uv's wheel for this machine carries on PyPI."""
    if platform.system() == "Darwin":
        return "macosx_11_0_arm64" if platform.machine() == "arm64" else "macosx_10_12_x86_64"
    arch = platform.machine()
    if platform.libc_ver()[0] == "glibc":
        return f"manylinux_2_17_{arch}.manylinux2014_{arch}"
    return f"musllinux_1_1_{arch}"


@dataclass
class Run:
    code: int
    out: str
    err: str


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A fresh clone as far as uvw.py is concerned: the script, and no .cache yet."""
    (tmp_path / "project").mkdir()
    shutil.copy(ROOT / "uvw.py", tmp_path / "project" / "uvw.py")
    (tmp_path / "empty-bin").mkdir()
    (tmp_path / "home").mkdir()
    return tmp_path / "project"


@pytest.fixture
async def pypi() -> AsyncIterator[LoopbackPyPI]:
    server = LoopbackPyPI("uv")
    for tag in (this_machines_tag(), "win_amd64", "musllinux_1_1_s390x"):
        name, data = fake_uv_wheel(VERSION, tag, script=FETCHED)
        server.wheels[name] = data
    async with server:
        yield server


async def uvw_py(
    project: Path, pypi: LoopbackPyPI, *args: str, python: str = sys.executable, path: str = ""
) -> Run:
    """``python uvw.py args`` as a newcomer runs it: a clean HOME, PATH without uv, pip
    pointed at the loopback index and no pip configuration of ours."""
    env = {
        "HOME": str(project.parent / "home"),
        "PATH": path or str(project.parent / "empty-bin"),
        "UVW_INDEX_URL": f"{pypi.url}/simple",
        "PIP_INDEX_URL": f"{pypi.url}/simple/",
        "PIP_CONFIG_FILE": os.devnull,
        "PIP_NO_CACHE_DIR": "1",
    }
    process = await asyncio.create_subprocess_exec(
        python,
        str(project / "uvw.py"),
        *args,
        env=env,
        cwd=project,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=120)
    return Run(process.returncode or 0, out.decode(), err.decode())


def fetched_binary(project: Path) -> Path:
    return project / ".cache" / "uvw" / VERSION / "bin" / "uv"


# --------------------------------------------------------------------------- fetching


async def test_without_uv_or_pip_uv_comes_from_pypi_once_and_gets_the_arguments(
    project: Path, pypi: LoopbackPyPI
) -> None:
    # this test's interpreter is a uv venv's: no pip, and no uv installed in it
    first = await uvw_py(project, pypi, "run", "--locked", "pytest")

    assert first.code == 0, first.err
    assert first.out == "fetched uv: run --locked pytest\n"
    assert f"fetching uv {VERSION}" in first.err
    assert pypi.requests == ["/simple/uv/", f"/files/{wheel_for_here(pypi)}"]
    assert os.access(fetched_binary(project), os.X_OK)

    pypi.requests.clear()
    again = await uvw_py(project, pypi, "sync", "--locked")
    assert (again.code, again.out, again.err) == (0, "fetched uv: sync --locked\n", "")
    assert pypi.requests == []  # the copy in .cache/uvw is used


def wheel_for_here(pypi: LoopbackPyPI) -> str:
    return next(name for name in pypi.wheels if this_machines_tag() in name)


async def test_a_wheel_that_does_not_match_the_listed_sha256_is_not_installed(
    project: Path, pypi: LoopbackPyPI
) -> None:
    pypi.listed_sha256[wheel_for_here(pypi)] = "0" * 64

    run = await uvw_py(project, pypi, "run", "pytest")

    assert run.code == 1
    assert run.out == ""
    assert "does not match the sha256 the index lists for it" in run.err
    assert "Install uv yourself (https://docs.astral.sh/uv/" in run.err
    assert not fetched_binary(project).exists()
    assert list((project / ".cache" / "uvw").iterdir()) == []  # no half-made copy


async def test_uv_on_path_is_used_as_it_is(project: Path, pypi: LoopbackPyPI) -> None:
    own = project.parent / "own-bin"
    own.mkdir()
    (own / "uv").write_text('#!/bin/sh\necho "the machine\'s uv: $*"\n')
    (own / "uv").chmod(0o755)

    run = await uvw_py(project, pypi, "run", "pytest", path=str(own))

    assert (run.code, run.out) == (0, "the machine's uv: run pytest\n")
    assert pypi.requests == []
    assert not (project / ".cache").exists()


def python_with_pip() -> str | None:
    """The machine's system python3 when it has pip (Debian's is externally managed)."""
    for candidate in ("/usr/bin/python3", "/usr/local/bin/python3", "/opt/homebrew/bin/python3"):
        if Path(candidate).is_file():
            has_pip = subprocess.run(
                [candidate, "-m", "pip", "--version"], capture_output=True, check=False
            )
            if has_pip.returncode == 0:
                return candidate
    return None


def externally_managed(python: str) -> bool:
    stdlib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_path('stdlib'))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    return (Path(stdlib) / "EXTERNALLY-MANAGED").is_file()


async def test_a_system_python_with_pip_installs_uv_beside_the_project_not_into_itself(
    project: Path, pypi: LoopbackPyPI
) -> None:
    python = python_with_pip()
    if python is None:
        pytest.skip("no system python3 with pip on this machine")
    if externally_managed(python):
        # what the README's old first step met on Debian, Ubuntu and Homebrew
        refused = await asyncio.to_thread(
            subprocess.run,
            [python, "-m", "pip", "install", "--index-url", f"{pypi.url}/simple/", "uv"],
            capture_output=True,
            text=True,
            env={"HOME": str(project.parent / "home"), "PIP_CONFIG_FILE": os.devnull},
        )
        assert refused.returncode != 0
        assert "externally-managed-environment" in refused.stderr

    run = await uvw_py(project, pypi, "run", "pytest", python=python)

    assert (run.code, run.out) == (0, "fetched uv: run pytest\n"), run.err
    assert pypi.requests == ["/simple/uv/", f"/files/{wheel_for_here(pypi)}"]
    assert os.access(fetched_binary(project), os.X_OK)


# --------------------------------------------------------------------------- which wheel

UV_WHEELS = [
    "uv-0.13.8-py3-none-linux_armv6l.whl",
    "uv-0.13.8-py3-none-macosx_10_12_x86_64.whl",
    "uv-0.13.8-py3-none-macosx_11_0_arm64.whl",
    "uv-0.13.8-py3-none-manylinux_2_17_aarch64.manylinux2014_aarch64.whl",
    "uv-0.13.8-py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
    "uv-0.13.8-py3-none-musllinux_1_1_aarch64.whl",
    "uv-0.13.8-py3-none-musllinux_1_1_x86_64.whl",
    "uv-0.13.8-py3-none-win32.whl",
    "uv-0.13.8-py3-none-win_amd64.whl",
    "uv-0.13.8-py3-none-win_arm64.whl",
    "uv-0.13.8.tar.gz",
]


@pytest.mark.parametrize(
    ("system", "machine", "libc", "wheel"),
    [
        ("Linux", "x86_64", "glibc", "manylinux_2_17_x86_64.manylinux2014_x86_64"),
        ("Linux", "aarch64", "glibc", "manylinux_2_17_aarch64.manylinux2014_aarch64"),
        ("Linux", "x86_64", "", "musllinux_1_1_x86_64"),  # Alpine
        ("Darwin", "arm64", "", "macosx_11_0_arm64"),
        ("Darwin", "x86_64", "", "macosx_10_12_x86_64"),
        ("Windows", "AMD64", "", "win_amd64"),
    ],
)
def test_the_wheel_for_each_machine(system: str, machine: str, libc: str, wheel: str) -> None:
    wanted = uvw.platform_tags(system, machine, libc)
    assert [w for w in UV_WHEELS if uvw.wheel_matches(w, wanted)] == [
        f"uv-0.13.8-py3-none-{wheel}.whl"
    ]


def test_this_module_keeps_to_the_syntax_of_an_old_system_python() -> None:
    """Ubuntu 20.04's python3 is 3.8: uvw.py must get that far, uv does the rest."""
    ast.parse((ROOT / "uvw.py").read_text(), feature_version=(3, 8))
