"""uv for this project on any machine with python3: ``python3 uvw.py <uv arguments>``.

The README's two commands go through this file, so they work the same with a Debian,
Ubuntu or Homebrew system Python (PEP 668 "externally managed": ``pip install uv`` is
refused there), a python.org install, a virtualenv, or a machine that already has uv.
Nothing is installed into the Python that runs it. The uv it runs, in order:

1. ``uv`` on PATH (a machine that has uv keeps using its own);
2. uv installed in this interpreter (``pip install uv`` in a virtualenv);
3. the uv this script fetched before, in ``.cache/uvw/<version>/`` beside it;
4. otherwise uv ``UV_VERSION`` is fetched there once: with ``pip install --target``
   when this Python has pip (it follows pip's index and proxy settings; PEP 668 does
   not apply to a target directory, which is not the system's environment), else by
   downloading uv's wheel from PyPI and checking it against the sha256 PyPI lists.

Runs on Python 3.8 and later (an old system python3 must get as far as uv, which then
finds or downloads the Python this project needs) and uses the standard library only.
The download reads the index's simple API (PEP 691): ``UVW_INDEX_URL``, else
``PIP_INDEX_URL``, else PyPI's ``https://pypi.org/simple``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import shutil
import stat
import subprocess
import sys
import tempfile
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path

# The uv the project is developed with; the Dockerfile's base image pins the same one.
UV_VERSION = "0.13.8"
# A package index's simple API (PEP 691, JSON): PyPI's unless told otherwise.
INDEX = (
    os.environ.get("UVW_INDEX_URL") or os.environ.get("PIP_INDEX_URL") or "https://pypi.org/simple"
).rstrip("/")
SIMPLE_JSON = "application/vnd.pypi.simple.v1+json"
CACHE = Path(__file__).resolve().parent / ".cache" / "uvw"
EXE = ".exe" if os.name == "nt" else ""
INSTALL_HELP = "https://docs.astral.sh/uv/getting-started/installation/"


class Unavailable(Exception):
    """uv could not be fetched; the message says why and what to do instead."""


def main(argv: list[str]) -> int:
    try:
        uv = find_uv() or fetch_uv(UV_VERSION)
    except Unavailable as e:
        print(f"uvw.py: {e}", file=sys.stderr)
        return 1
    if os.name == "nt":  # no exec on Windows: run it and pass its exit status on
        return subprocess.call([uv, *argv])
    os.execv(uv, [uv, *argv])
    return 0  # not reached


def find_uv() -> str | None:
    """A uv that is already there: on PATH, in this interpreter, or fetched before."""
    on_path = shutil.which("uv")
    if on_path:
        return on_path
    try:
        import uv  # type: ignore[import-not-found]

        return str(uv.find_uv_bin())
    except Exception:  # not installed here, or installed without its binary
        pass
    fetched = _binary(CACHE / UV_VERSION)
    return str(fetched) if fetched else None


def fetch_uv(version: str) -> str:
    """uv ``version`` in CACHE/<version>, fetched once (pip if it works, else PyPI)."""
    print(f"uvw.py: fetching uv {version} into {CACHE} (once)", file=sys.stderr)
    CACHE.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f"{version}-", dir=CACHE))
    try:
        why_not_pip = _pip_install(version, work)
        if why_not_pip:
            try:
                _download(version, work)
            except Unavailable as e:
                raise Unavailable(
                    f"could not fetch uv {version}: with pip: {why_not_pip}; from {INDEX}: {e}. "
                    f"Install uv yourself ({INSTALL_HELP}) and run the same command again."
                ) from None
        work.chmod(0o755)  # mkdtemp made it private; the copy is for every user of the tree
        with contextlib.suppress(OSError):  # OSError: another run got there first
            os.replace(work, CACHE / version)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    found = _binary(CACHE / version)
    if found is None:
        raise Unavailable(f"uv {version} was fetched but its binary is missing in {CACHE}")
    return str(found)


def _binary(root: Path) -> Path | None:
    for folder in ("bin", "Scripts"):
        path = root / folder / f"uv{EXE}"
        if path.is_file():
            return path
    return None


def _pip_install(version: str, target: Path) -> str | None:
    """Install uv into ``target`` with this Python's pip; why not, or None when done."""
    try:
        subprocess.run(
            [sys.executable, "-m", "pip", "--version"],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    except (OSError, subprocess.CalledProcessError):
        return "this Python has no pip"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-warn-script-location",
            "--target",
            str(target),
            f"uv=={version}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    if done.returncode != 0:
        last = [line for line in done.stdout.splitlines() if line.strip()][-1:]
        return f"pip failed ({last[0].strip() if last else f'exit {done.returncode}'})"
    if _binary(target) is None:
        return "pip installed uv without its binary"
    return None


def _download(version: str, target: Path) -> None:
    """uv's wheel for this machine from the index, checked against the sha256 the index
    lists, unpacked as far as the binary (``target/bin/uv``)."""
    page = f"{INDEX}/uv/"
    request = urllib.request.Request(page, headers={"Accept": SIMPLE_JSON})
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            files = json.load(answer)["files"]
    except Exception as e:
        raise Unavailable(f"cannot read {page} ({e})") from None
    wanted = platform_tags()
    release = [f for f in files if f["filename"].startswith(f"uv-{version}-")]
    wheel = next((f for f in release if wheel_matches(f["filename"], wanted)), None)
    if wheel is None:
        raise Unavailable(f"{INDEX} has no uv {version} wheel for this machine ({wanted[0]})")
    url = urllib.parse.urljoin(page, wheel["url"])
    data = _get(url)
    digest = hashlib.sha256(data).hexdigest()
    if digest != wheel["hashes"].get("sha256"):
        raise Unavailable(
            f"{wheel['filename']} does not match the sha256 the index lists for it "
            f"(got {digest}); nothing was installed"
        )
    member = f"uv-{version}.data/scripts/uv{EXE}"
    archive = target / wheel["filename"]
    archive.write_bytes(data)
    try:
        with zipfile.ZipFile(archive) as zipped:
            binary = zipped.read(member)
    except (KeyError, zipfile.BadZipFile):
        raise Unavailable(f"{wheel['filename']} holds no {member}") from None
    finally:
        archive.unlink()
    path = target / "bin" / f"uv{EXE}"
    path.parent.mkdir()
    path.write_bytes(binary)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


def _get(url: str) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=300) as answer:
            return bytes(answer.read())
    except Exception as e:
        raise Unavailable(f"cannot download {url} ({e})") from None


def platform_tags(
    system: str | None = None, machine: str | None = None, libc: str | None = None
) -> list[str]:
    """What a wheel's platform tag must say to run here: a prefix and an architecture,
    as ``prefix*arch``; the first is the one messages show."""
    system = system or platform.system()
    machine = (machine or platform.machine()).lower()
    arch = {"amd64": "x86_64", "x64": "x86_64", "arm64": "aarch64"}.get(machine, machine)
    if system == "Linux":
        libc = platform.libc_ver()[0] if libc is None else libc
        family = "manylinux" if libc == "glibc" else "musllinux"
        return [f"{family}*{arch}"]
    if system == "Darwin":
        mac = "arm64" if arch == "aarch64" else arch
        return [f"macosx*{mac}", "macosx*universal2"]
    if system == "Windows":
        return [{"x86_64": "win*amd64", "aarch64": "win*arm64"}.get(arch, "win32*")]
    return [f"{system.lower()}*{arch}"]


def wheel_matches(filename: str, wanted: list[str]) -> bool:
    """Whether a wheel's file name carries one of ``wanted``'s platform tags."""
    if not filename.endswith(".whl"):
        return False
    tags = filename[: -len(".whl")].split("-")[-1].split(".")
    for pattern in wanted:
        prefix, _, arch = pattern.partition("*")
        if any(tag.startswith(prefix) and tag.endswith(arch) for tag in tags):
            return True
    return False


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
