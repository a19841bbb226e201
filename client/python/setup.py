"""Builds the corral package with stubs generated from the repository's proto/.

Everything static is in pyproject.toml; this file adds what needs code: the
version (CMakeLists.txt's project VERSION, the one version of the project)
and a build_py step that runs protoc with grpc_python_plugin, writing
corral/v1/corral_pb2.py and corral_pb2_grpc.py into the build, never into the
source tree. PROTOC and GRPC_PYTHON_PLUGIN override the tools found on PATH.
"""

import atexit
import os
import re
import shutil
import subprocess
import tempfile

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
PROTO_DIR = os.path.join(ROOT, "proto")
PROTO = os.path.join("corral", "v1", "corral.proto")


def project_version() -> str:
    path = os.path.join(ROOT, "CMakeLists.txt")
    with open(path, encoding="utf-8") as f:
        match = re.search(r"project\(\s*corral\s+VERSION\s+([0-9][0-9.]*)", f.read())
    if not match:
        raise SystemExit(f"corral: no `project(corral VERSION ...)` in {path}")
    return match.group(1)


def tool(env_name: str, program: str, package: str) -> str:
    path = os.environ.get(env_name) or shutil.which(program)
    if not path:
        raise SystemExit(f"corral: {program} not found (Debian: apt-get install {package}); "
                         f"or set {env_name}")
    return path


class BuildPyWithStubs(build_py):
    def run(self):
        super().run()
        if not os.path.isfile(os.path.join(PROTO_DIR, PROTO)):
            raise SystemExit(f"corral: {PROTO} not found under {PROTO_DIR}: build from a "
                             "checkout of the corral repository")
        protoc = tool("PROTOC", "protoc", "protobuf-compiler")
        plugin = tool("GRPC_PYTHON_PLUGIN", "grpc_python_plugin", "protobuf-compiler-grpc")
        self.mkpath(os.path.join(self.build_lib, "corral", "v1"))
        subprocess.run([protoc, f"-I{PROTO_DIR}", f"--python_out={self.build_lib}",
                        f"--grpc_out={self.build_lib}", f"--plugin=protoc-gen-grpc={plugin}",
                        os.path.join(PROTO_DIR, PROTO)], check=True)


# setuptools' scratch files (build/, *.egg-info) go to a temporary directory,
# not next to this file: pip builds in the source tree.
SCRATCH = tempfile.mkdtemp(prefix="corral-py-build-")
atexit.register(shutil.rmtree, SCRATCH, ignore_errors=True)

setup(version=project_version(), cmdclass={"build_py": BuildPyWithStubs},
      options={"build": {"build_base": os.path.join(SCRATCH, "build")},
               "egg_info": {"egg_base": SCRATCH}})
