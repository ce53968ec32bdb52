"""Build hooks: the BPF objects (see libtrace/bpf/build.py), the C modules
(libtrace/tracer/_ringdecode.c, libtrace/parsers/_respscan.c: see
libtrace/native.py) and the hot modules compiled by mypyc (see
libtrace/compiled.py) go into the wheel.  The compiled parts are optional: without a C compiler (or without mypy in the build environment)
the wheel keeps the pure-Python modules, which are complete."""

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.command.build_py import build_py

ROOT = Path(__file__).parent


def _load(relative: str, name: str) -> ModuleType:
    """A module of the package loaded by path: importing the package is not
    needed (and its dependencies may not be installed in the build env yet)."""
    spec = importlib.util.spec_from_file_location(name, ROOT / relative)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


class BuildWithBpf(build_py):
    def run(self) -> None:
        super().run()
        out = Path(self.build_lib) / "libtrace" / "bpf" / "obj"
        # The sources are read from the source tree and stamped with their
        # digest, which matches the copies build_py placed beside them.
        _load("libtrace/bpf/build.py", "_libtrace_bpf_build").build(out)


class BuildExtWithMypyc(build_ext):
    """build_ext with the mypyc-compiled modules, when a wheel is built or an
    install is made from a copy (see :func:`_compiles`)."""

    def finalize_options(self) -> None:
        if _compiles() and not self.inplace:
            self.distribution.ext_modules = [
                *(self.distribution.ext_modules or []), *_mypyc_extensions()
            ]
        if self.parallel is None:
            self.parallel = os.cpu_count() or 1
        super().finalize_options()


def _compiles() -> bool:
    """Whether this setup.py run compiles with mypyc: for a wheel or a build,
    not for metadata (pip's first steps finalise build_ext too, and mypyc
    type-checks first, which takes a while), never for an editable install
    (its extensions would shadow the sources being edited; setuptools says it
    is one only after build_ext is set up, its command line at once), and not
    with LIBTRACE_PURE_PYTHON=1."""
    if os.environ.get("LIBTRACE_PURE_PYTHON", "") not in ("", "0"):
        return False
    commands = set(sys.argv[1:])
    if commands & {"editable_wheel", "develop"}:
        return False
    return bool(commands & {"bdist_wheel", "build", "build_ext", "install"})


def _mypyc_extensions() -> list[Extension]:
    try:
        from mypyc.build import mypycify
    except ImportError:
        print("libtrace: mypyc is not available: the wheel keeps pure-Python modules")
        return []
    modules = _load("libtrace/compiled.py", "_libtrace_compiled").MODULES
    paths = [name.replace(".", "/") + ".py" for name in modules]
    # The build environment has mypy but not the package's dependencies:
    # their names are Any here (tox -e lint runs mypy strict with them
    # installed).  Calling and reading Any is compiled as plain Python; a
    # class whose base is Any is not (mypyc would take it for a native base
    # and crash at run time), so subclassing Any stays an error.  The modules
    # these import are checked for their interfaces but not reported on.
    options = ["--follow-imports=silent", "--ignore-missing-imports", "--no-warn-return-any",
               "--no-warn-unused-ignores"]  # fmt: skip
    try:
        extensions: list[Extension] = mypycify([*options, *paths], opt_level="3")
    except (Exception, SystemExit) as exc:  # mypyc exits on a type error
        print(f"libtrace: mypyc failed ({exc}): the wheel keeps pure-Python modules")
        return []
    for extension in extensions:
        extension.optional = True  # no C compiler: the pure modules stay
    return extensions


setup(
    cmdclass={"build_py": BuildWithBpf, "build_ext": BuildExtWithMypyc},
    ext_modules=[
        Extension(
            "libtrace.tracer._ringdecode",
            ["libtrace/tracer/_ringdecode.c"],
            depends=["libtrace/bpf/socket_trace.h"],  # the event layout it includes
            extra_compile_args=["-O2"],
            optional=True,
        ),
        Extension(
            "libtrace.parsers._respscan",
            ["libtrace/parsers/_respscan.c"],
            extra_compile_args=["-O2"],
            optional=True,
        ),
    ],
)
