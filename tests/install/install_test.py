"""corral installed as a user installs it (README "Install"), then used for real.

    PythonPackage  `pip install ./client/python` into a fresh venv (Debian's
                   grpcio/protobuf through --system-site-packages, no PyPI);
                   from another directory, without PYTHONPATH, the installed
                   `corral` runs get_or_compute against corrald + redis-server.
    CppPackage     `cmake --install BUILD --prefix P`; an out-of-tree project
                   (tests/install/consumer) finds it with find_package(corral),
                   links corral::client and runs GetOrCompute against the
                   installed corrald (P/bin) on a real redis-server.
    DebPackage     `cpack -G DEB`; checks the .deb with dpkg-deb -I/-c, then runs
                   its corrald with its default config and its corralctl,
                   unpacked in a temporary directory (nothing is installed
                   system-wide).
    Readme         README's Install section carries the commands tested here.
    OneVersion     image tags in deploy/ match CMake's project VERSION.

Run by ctest (tests/install/CMakeLists.txt) with CORRAL_BUILD_DIR,
CORRAL_SOURCE_DIR, CORRAL_CMAKE and CORRAL_CPACK set; one class per entry.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
import corral_testing as ct  # noqa: E402  (real redis-server and corrald processes)

SOURCE_DIR = ct.SOURCE_DIR
BUILD_DIR = ct.BUILD_DIR
CMAKE = os.environ.get("CORRAL_CMAKE") or "cmake"
CPACK = os.environ.get("CORRAL_CPACK") or "cpack"

# The commands README's Install section shows, as this file runs them.
PIP_INSTALL = "pip install --no-index --no-deps --no-build-isolation ./client/python"
VENV = "/usr/bin/python3 -m venv --system-site-packages"
CMAKE_INSTALL = "cmake --install build --prefix"
CPACK_DEB = "cpack -G DEB"
DPKG_INSTALL = "dpkg -i build/corral_"


def project_version() -> str:
    """The version CMake configured this build with (project(corral VERSION))."""
    with open(os.path.join(BUILD_DIR, "CMakeCache.txt")) as f:
        return re.search(r"^CMAKE_PROJECT_VERSION:STATIC=(\S+)$", f.read(), re.M).group(1)


def run(argv, **kwargs) -> subprocess.CompletedProcess:
    """Runs argv to completion; fails the test with its output if it fails."""
    out = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         stdin=subprocess.DEVNULL, timeout=kwargs.pop("timeout", 480), **kwargs)
    if out.returncode != 0:
        raise AssertionError(f"{argv} exited {out.returncode}:\n{out.stdout[-6000:]}")
    return out


def clean_env(**extra) -> dict:
    """This environment without anything that would find corral in the tree."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "CORRAL_"))}
    env.update(extra)
    return env


class InstalledCorrald(ct._LoggedProcess):
    """corrald from an installed or unpacked tree, on free ports."""

    name = "installed-corrald"

    def __init__(self, corrald: str, log_dir: str, args=()):
        super().__init__([corrald, "--listen_address=127.0.0.1:0",
                          "--metrics_address=127.0.0.1:0", *args], log_dir,
                         re.compile(r"corrald ready listen=(\S+) metrics=(\S+) store=(\S+)"))
        self.target, self.store = self.match.group(1), self.match.group(3)


class InstallTestCase(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="corral-install-")
        self.addCleanup(shutil.rmtree, self.tmp, ignore_errors=True)

    def redis(self) -> ct.RedisServer:
        server = ct.RedisServer(self.tmp)
        self.addCleanup(server.stop)
        return server

    def corrald(self, path: str, args=()) -> InstalledCorrald:
        server = InstalledCorrald(path, self.tmp, args)
        self.addCleanup(server.stop)
        return server


PY_CLIENT = r"""
import importlib.metadata, json, sys
import corral

target, key = sys.argv[1], sys.argv[2]
client = corral.Client(target, worker_id="install-test")
computes = []
def compute():
    computes.append(1)
    return b"Ficus lyrata"
first = client.get_or_compute_result("pytest", key, compute)
second = client.get_or_compute_result("pytest", key, compute)
import corral.v1.corral_pb2 as pb2
print(json.dumps({
    "corral": corral.__file__, "stubs": pb2.__file__,
    "version": importlib.metadata.version("corral-client"),
    "first": [first.value.decode(), first.computed],
    "second": [second.value.decode(), second.computed],
    "computes": len(computes),
}))
"""


class PythonPackage(InstallTestCase):
    def test_pip_install_then_get_or_compute_from_elsewhere(self):
        venv = os.path.join(self.tmp, "venv")
        run([*VENV.split(), venv])
        pip = os.path.join(venv, "bin", "pip")
        # The README's command, from the repository root; no cache in $HOME.
        run([pip, *PIP_INSTALL.split()[1:]], cwd=SOURCE_DIR,
            env=clean_env(PIP_NO_CACHE_DIR="1", PIP_DISABLE_PIP_VERSION_CHECK="1"))
        # Building left nothing in the source tree (setup.py uses a scratch dir).
        for leftover in ("build", "corral_client.egg-info", "corral/v1"):
            self.assertFalse(os.path.exists(os.path.join(SOURCE_DIR, "client", "python", leftover)),
                             leftover)

        redis = self.redis()
        server = self.corrald(ct.CORRALD, [f"--redis={redis.uri}"])
        elsewhere = os.path.join(self.tmp, "elsewhere")
        os.mkdir(elsewhere)
        script = os.path.join(elsewhere, "client.py")
        with open(script, "w") as f:
            f.write(PY_CLIENT)
        out = run([os.path.join(venv, "bin", "python"), script, server.target, ct.unique_key()],
                  cwd=elsewhere, env=clean_env(), timeout=60)
        got = json.loads(out.stdout.strip().splitlines()[-1])

        site = os.path.join(os.path.realpath(venv), "lib")
        self.assertTrue(os.path.realpath(got["corral"]).startswith(site), got)
        self.assertTrue(os.path.realpath(got["stubs"]).startswith(site), got)
        self.assertEqual(got["version"], project_version())
        self.assertEqual(got["first"], ["Ficus lyrata", True])
        self.assertEqual(got["second"], ["Ficus lyrata", False])
        self.assertEqual(got["computes"], 1)


class CppPackage(InstallTestCase):
    def test_find_package_consumer_runs_get_or_compute(self):
        prefix = os.path.join(self.tmp, "prefix")
        run([CMAKE, "--install", BUILD_DIR, "--prefix", prefix])
        for path in ("bin/corrald", "bin/corralctl", "include/corral/client.h",
                     "include/corral/client/cpp/corral_client.h",
                     "include/corral/client/cpp/lock_guard.h",
                     "include/corral/v1/corral.pb.h", "include/corral/v1/corral.grpc.pb.h",
                     "lib/libcorral_client.a", "lib/libcorral_proto.a",
                     "lib/cmake/corral/corralConfig.cmake",
                     "lib/cmake/corral/corralConfigVersion.cmake",
                     "lib/cmake/corral/corralTargets.cmake",
                     "etc/corral/corrald.textproto", "lib/systemd/system/corrald.service",
                     "share/corral/proto/corral/v1/corral.proto"):
            self.assertTrue(os.path.isfile(os.path.join(prefix, path)), path)
        # The library's private headers stay private.
        self.assertFalse(os.path.exists(os.path.join(prefix, "include/corral/client/cpp/call.h")))
        # The unit points into the prefix it was installed to.
        with open(os.path.join(prefix, "lib/systemd/system/corrald.service")) as f:
            unit = f.read()
        self.assertIn(f"LoadCredential=corrald.textproto:{prefix}/etc/corral/corrald.textproto",
                      unit)
        self.assertIn(f"ExecStart={prefix}/bin/corrald "
                      "--config=${CREDENTIALS_DIRECTORY}/corrald.textproto", unit)

        consumer = os.path.join(self.tmp, "consumer")
        configure = [CMAKE, "-S", os.path.join(SOURCE_DIR, "tests", "install", "consumer"),
                     "-B", consumer, f"-DCMAKE_PREFIX_PATH={prefix}", "-DCMAKE_BUILD_TYPE=Release"]
        if shutil.which("ninja"):
            configure += ["-G", "Ninja"]
        if shutil.which("ccache"):
            configure.append("-DCMAKE_CXX_COMPILER_LAUNCHER=ccache")
        run(configure, env=clean_env())
        run([CMAKE, "--build", consumer, "-j", "2"], env=clean_env())

        redis = self.redis()
        server = self.corrald(os.path.join(prefix, "bin", "corrald"), [f"--redis={redis.uri}"])
        self.assertTrue(server.store.startswith("redis://"), server.store)
        out = run([os.path.join(consumer, "consumer"), server.target, ct.unique_key()],
                  env=clean_env(), timeout=60)
        self.assertRegex(out.stdout, r"computed value=Rosa canina fencing_token=[1-9]")
        self.assertIn("hit value=Rosa canina computes=1", out.stdout)
        self.assertIn("refused reason=invalid-argument", out.stdout)

    def test_version_file_refuses_another_minor(self):
        prefix = os.path.join(self.tmp, "prefix")
        run([CMAKE, "--install", BUILD_DIR, "--prefix", prefix, "--component", "dev"])
        major, minor = project_version().split(".")[:2]
        script = os.path.join(self.tmp, "find.cmake")
        with open(script, "w") as f:
            f.write(f"set(PACKAGE_FIND_VERSION {major}.{int(minor) + 1}.0)\n"
                    f"set(PACKAGE_FIND_VERSION_MAJOR {major})\n"
                    f"set(PACKAGE_FIND_VERSION_MINOR {int(minor) + 1})\n"
                    f"include({prefix}/lib/cmake/corral/corralConfigVersion.cmake)\n"
                    "message(STATUS \"compatible=${PACKAGE_VERSION_COMPATIBLE} "
                    "version=${PACKAGE_VERSION}\")\n")
        out = run([CMAKE, "-P", script])
        self.assertIn(f"compatible=FALSE version={project_version()}", out.stdout)
        # Only the dev component: no executables.
        self.assertFalse(os.path.exists(os.path.join(prefix, "bin", "corrald")))


class DebPackage(InstallTestCase):
    def test_cpack_deb_contents_and_it_runs(self):
        out_dir = os.path.join(self.tmp, "pkg")
        run([CPACK, "-G", "DEB", "-B", out_dir, "--config",
             os.path.join(BUILD_DIR, "CPackConfig.cmake")], cwd=BUILD_DIR)
        debs = [f for f in os.listdir(out_dir) if f.endswith(".deb")]
        self.assertEqual(len(debs), 1, os.listdir(out_dir))
        deb = os.path.join(out_dir, debs[0])
        self.assertRegex(debs[0], rf"^corral_{re.escape(project_version())}_[a-z0-9]+\.deb$")

        info = run(["dpkg-deb", "-I", deb]).stdout
        self.assertRegex(info, r"(?m)^ Package: corral$")
        self.assertRegex(info, rf"(?m)^ Version: {re.escape(project_version())}$")
        depends = re.search(r"(?m)^ Depends: (.*)$", info).group(1)
        for dep in ("adduser", "libgrpc++", "libprotobuf", "libhiredis", "libc6"):
            self.assertIn(dep, depends)
        for script in ("postinst", "prerm", "postrm", "conffiles"):
            self.assertRegex(info, rf"(?m)^\s+\d+ bytes,\s+\d+ lines\s+\*?\s*{script}\b")

        listing = run(["dpkg-deb", "-c", deb]).stdout
        entries = {line.split()[5]: line.split()[0] for line in listing.splitlines()}
        for path, mode in (("./usr/bin/corrald", "-rwxr-xr-x"),
                           ("./usr/bin/corralctl", "-rwxr-xr-x"),
                           ("./usr/lib/systemd/system/corrald.service", "-rw-r--r--"),
                           ("./etc/corral/corrald.textproto", "-rw-r--r--"),
                           ("./usr/share/doc/corral/OPERATIONS.md", "-rw-r--r--")):
            self.assertEqual(entries.get(path), mode, path)
        # The runtime only: no static libraries, headers or CMake files.
        self.assertEqual([p for p in entries if re.search(r"\.(a|h)$|/include/|/cmake/", p)], [])

        control = os.path.join(self.tmp, "control")
        run(["dpkg-deb", "-e", deb, control])
        with open(os.path.join(control, "conffiles")) as f:
            self.assertEqual(f.read().split(), ["/etc/corral/corrald.textproto"])
        with open(os.path.join(control, "postinst")) as f:
            postinst = f.read()
        self.assertRegex(postinst, r"adduser --system --group [^\n]*\\\n[^\n]*\bcorral\n")
        for script in ("postinst", "prerm", "postrm"):
            run(["sh", "-n", os.path.join(control, script)])

        root = os.path.join(self.tmp, "root")
        run(["dpkg-deb", "-x", deb, root])
        with open(os.path.join(root, "usr/lib/systemd/system/corrald.service")) as f:
            unit = f.read()
        self.assertIn("LoadCredential=corrald.textproto:/etc/corral/corrald.textproto", unit)
        self.assertIn("LoadCredential=tls.key:/etc/corral/tls/tls.key", unit)
        self.assertIn("ExecStart=/usr/bin/corrald --config=${CREDENTIALS_DIRECTORY}/corrald.textproto",
                      unit)
        self.assertIn("EnvironmentFile=-/etc/corral/corrald.env", unit)
        self.assertRegex(unit, r"(?m)^User=corral$")
        self.assertRegex(unit, r"(?m)^Group=corral$")
        self.assertNotIn("/usr/local", unit)
        self.verify_unit(unit.replace("ExecStart=/usr/bin/corrald",
                                      f"ExecStart={root}/usr/bin/corrald"))

        # The packaged corrald starts with the packaged config (addresses
        # moved to free loopback ports) and the packaged corralctl talks to it.
        redis = self.redis()
        server = self.corrald(os.path.join(root, "usr/bin/corrald"),
                              [f"--config={root}/etc/corral/corrald.textproto",
                               f"--redis={redis.uri}"])
        corralctl = os.path.join(root, "usr/bin/corralctl")
        key = ct.unique_key()
        run([corralctl, "--target", server.target, "set", "plant_id", key, "Rosa canina"],
            timeout=30)
        got = run([corralctl, "--target", server.target, "get", "plant_id", key], timeout=30)
        self.assertIn("Rosa canina", got.stdout)


    def verify_unit(self, unit: str) -> None:
        """systemd-analyze verify (ExecStart must exist: the unpacked one)."""
        tool = shutil.which("systemd-analyze")
        if not tool:
            return  # Comes with systemd; tests/deploy skips likewise.
        path = os.path.join(self.tmp, "corrald.service")
        with open(path, "w") as f:
            f.write(unit)
        out = subprocess.run([tool, "verify", path], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, timeout=60)
        if out.returncode != 0 and re.search(r"bus|Failed to (initialize|connect)", out.stdout, re.I):
            return  # No systemd to ask in this environment.
        self.assertEqual(out.returncode, 0, out.stdout)
        self.assertNotRegex(out.stdout, r"Unknown (key|section|lvalue)|[Ii]gnoring|[Ii]nvalid")


class Readme(unittest.TestCase):
    def test_install_section_shows_the_tested_commands(self):
        with open(os.path.join(SOURCE_DIR, "README.md")) as f:
            text = f.read()
        section = re.search(r"^## Install\n(.*?)^## ", text, re.M | re.S)
        self.assertIsNotNone(section, "README.md has no '## Install' section")
        for command in (VENV, PIP_INSTALL, CMAKE_INSTALL, "find_package(corral",
                        "corral::client", "#include <corral/client.h>", CPACK_DEB, DPKG_INSTALL,
                        "systemctl enable --now corrald"):
            self.assertIn(command, section.group(1))
        # The one version: the .deb's file name and find_package's version.
        self.assertIn(f"corral_{project_version()}_amd64.deb", section.group(1))
        major, minor = project_version().split(".")[:2]
        self.assertIn(f"find_package(corral {major}.{minor} REQUIRED)", section.group(1))


class OneVersion(unittest.TestCase):
    """CMake's project VERSION is the version; what cannot derive it must match.
    (The Python package, the .deb and corralConfigVersion.cmake derive it.)"""

    def test_image_tags_match_the_project_version(self):
        version = project_version()
        found = []
        for path, pattern in (("deploy/k8s/kustomization.yaml", r'newTag: "([^"]+)"'),
                              ("deploy/docker/Dockerfile", r"corrald:(\d[\w.]*)"),
                              ("deploy/README.md", r"corrald:(\d[\w.]*)")):
            with open(os.path.join(SOURCE_DIR, path)) as f:
                tags = re.findall(pattern, f.read())
            self.assertTrue(tags, f"no image tag found in {path}")
            found += [(path, tag) for tag in tags]
        self.assertEqual([(p, t) for p, t in found if t != version], [])

    def test_node_package_matches_the_project_version(self):
        with open(os.path.join(SOURCE_DIR, "client/node/package.json")) as f:
            self.assertEqual(json.load(f)["version"], project_version())


if __name__ == "__main__":
    unittest.main()
