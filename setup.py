"""Build hooks: the BPF objects (see libtrace/bpf/build.py) and the compiled
decoder (libtrace/tracer/_ringdecode.c, optional: without a C compiler the
wheel keeps the pure-Python path) go into the wheel."""

import importlib.util
import sys
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_py import build_py


class BuildWithBpf(build_py):
    def run(self) -> None:
        super().run()
        # Load the build module by path: importing the package is not needed
        # (and its dependencies may not be installed in the build env yet).
        path = Path(__file__).parent / "libtrace" / "bpf" / "build.py"
        spec = importlib.util.spec_from_file_location("_libtrace_bpf_build", path)
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses look their module up
        spec.loader.exec_module(module)
        out = Path(self.build_lib) / "libtrace" / "bpf" / "obj"
        # The sources are read from the source tree and stamped with their
        # digest, which matches the copies build_py placed beside them.
        module.build(out)


setup(
    cmdclass={"build_py": BuildWithBpf},
    ext_modules=[
        Extension(
            "libtrace.tracer._ringdecode",
            ["libtrace/tracer/_ringdecode.c"],
            extra_compile_args=["-O2"],
            optional=True,
        )
    ],
)
