#!/usr/bin/python3
"""deploy/docker, deploy/compose.yaml, deploy/k8s, deploy/systemd: they parse,
agree with each other and with corrald (flags it really has, ports it really
opens, drain time it really takes), and the configuration and command line
each one gives corrald really start a corrald that reports SERVING.

No container engine or cluster runs here: the Dockerfile and compose file
are checked statically (plus docker-compose's own schema validation), and
each deployment's command line is run against the locally built corrald."""

import hashlib
import os
import re
import shlex
import subprocess
import sys
import tempfile
import unittest

import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import deploy_support as ds  # noqa: E402

DOCKERFILE = ds.src("deploy", "docker", "Dockerfile")
COMPOSE = ds.src("deploy", "compose.yaml")
K8S = ds.src("deploy", "k8s")
UNIT = ds.src("deploy", "systemd", "corrald.service")
EXAMPLE_CONFIG = ds.src("deploy", "config", "corrald.textproto")
# corrald's own shutdown after the drain: coordinator.Shutdown(2 s).
RELEASE_LOCKS_S = 2


def drain_seconds(textproto):
    """limits.drain_timeout of a config file's text (corrald's default: 10 s)."""
    m = re.search(r"drain_timeout\s*\{\s*seconds:\s*(\d+)", textproto)
    return int(m.group(1)) if m else 10


def duration_s(text):
    m = re.fullmatch(r"(\d+)(s|m)?", str(text))
    return int(m.group(1)) * (60 if m.group(2) == "m" else 1)


def flag(args, name):
    for a in args:
        if a.startswith(f"--{name}="):
            return a.split("=", 1)[1]
    return None


def port_of(address):
    return int(address.rsplit(":", 1)[1])


def uncommented(textproto):
    """A textproto's lines without their comments (none of ours has # in a string)."""
    return "\n".join(line.split("#", 1)[0] for line in textproto.splitlines())


def make_server_pki(d):
    """A CA (ca.crt) and a server certificate for localhost and 127.0.0.1
    (tls.crt, tls.key), named as in a kubernetes.io/tls Secret."""
    def openssl(*args):
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)
    curve = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl("req", "-x509", *curve, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
            "-subj", "/CN=deploy-test-ca", "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign")
    with open(os.path.join(d, "server.ext"), "w") as f:
        f.write("extendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n")
    openssl("req", "-new", *curve, "-keyout", "tls.key", "-out", "server.csr", "-subj", "/CN=corrald")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-set_serial", "9", "-days", "2", "-extfile", "server.ext", "-out", "tls.crt")
    return {n: os.path.join(d, n) for n in ("ca.crt", "tls.crt", "tls.key")}


# --- Dockerfile ---------------------------------------------------------------------

def dockerfile():
    """[(stage index, INSTRUCTION, argument text)] with continuations joined."""
    with open(DOCKERFILE) as f:
        text = re.sub(r"\\\n", " ", f.read())
    out, stage = [], -1
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instr, _, rest = line.partition(" ")
        instr = instr.upper()
        if instr == "FROM":
            stage += 1
        out.append((stage, instr, rest.strip()))
    return out


def exec_form(text):
    import json
    return json.loads(text)


class Dockerfile(ds.TestCase):
    def setUp(self):
        super().setUp()
        self.instr = dockerfile()
        self.final = [(i, a) for s, i, a in self.instr if s == 1]

    def one(self, name):
        found = [a for i, a in self.final if i == name]
        self.assertEqual(len(found), 1, name)
        return found[0]

    def installed_paths(self):
        return self.installed_paths_of(self.instr)

    @staticmethod
    def installed_paths_of(instr):
        """Paths the final stage COPYs into the image."""
        paths = set()
        for i, a in [(i, a) for s, i, a in instr if s == 1]:
            if i == "COPY":
                words = [w for w in a.split() if not w.startswith("--")]
                *sources, dest = words
                for s in sources:
                    paths.add(os.path.join(dest, os.path.basename(s)) if dest.endswith("/") else dest)
        return paths

    def test_two_stages_from_bookworm_slim(self):
        froms = [a for _, i, a in self.instr if i == "FROM"]
        self.assertEqual(froms, ["debian:bookworm-slim AS build", "debian:bookworm-slim"])

    def test_builds_with_the_projects_scripts_and_cmake(self):
        build = " ".join(a for s, i, a in self.instr if s == 0 and i == "RUN")
        self.assertIn("./scripts/deps.sh", build)
        self.assertIn("cmake -S . -B /build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo", build)
        # The paths it strips from are where this CMake build puts the binaries.
        for path in re.findall(r"/build/(\S+)", build):
            self.assertTrue(os.path.exists(os.path.join(ds.BUILD, path)), path)

    def test_copied_sources_exist(self):
        for s, i, a in self.instr:
            if i == "COPY" and "--from" not in a:
                *sources, _ = a.split()
                for source in sources:
                    if source != ".":
                        self.assertTrue(os.path.exists(ds.src(source)), source)

    def test_runs_as_a_fixed_non_root_user(self):
        user = self.one("USER")
        uid, _, gid = user.partition(":")
        self.assertTrue(uid.isdigit() and int(uid) > 0, user)
        self.assertTrue(gid.isdigit() and int(gid) > 0, user)
        self.assertIn(f"--uid {uid}", " ".join(a for i, a in self.final if i == "RUN"))

    def test_healthcheck_and_entrypoint_use_binaries_the_image_contains(self):
        installed = self.installed_paths()
        health = self.one("HEALTHCHECK")
        self.assertIn("CMD [", health)
        argv = exec_form(health[health.index("CMD") + 3:].strip())
        self.assertIn(argv[0], installed)
        self.assertEqual(os.path.basename(argv[0]), "corralctl")
        self.assertIn("health", argv)
        entry = exec_form(self.one("ENTRYPOINT"))
        self.assertIn(entry[0], installed)
        self.assertEqual(os.path.basename(entry[0]), "corrald")
        # The healthcheck dials the port CMD makes corrald listen on.
        cmd = exec_form(self.one("CMD"))
        self.assertEqual(port_of(argv[argv.index("--target") + 1]),
                         port_of(flag(cmd, "listen_address")))
        self.assertIn(flag(cmd, "config"), installed)

    def test_cmd_uses_real_flags_and_exposes_its_ports(self):
        cmd = exec_form(self.one("CMD"))
        ds.assert_known_flags(self, cmd, "Dockerfile CMD")
        exposed = {int(p) for p in self.one("EXPOSE").split()}
        self.assertEqual(exposed, {port_of(flag(cmd, "listen_address")),
                                   port_of(flag(cmd, "metrics_address"))})

    def test_runtime_packages_cover_the_linked_libraries(self):
        run = " ".join(a for i, a in self.final if i == "RUN")
        listed = set(re.findall(r"\blib[\w.+-]+", run))
        libs = set()
        for binary in (ds.CORRALD, ds.CORRALCTL):
            ldd = ds.run(["ldd", binary]).stdout
            if re.search(r"\blib(asan|ubsan|tsan)\.so", ldd):
                # A sanitizer build (scripts/test.sh --sanitize) links its
                # runtime; the image is built without one.
                self.skipTest("sanitizer build: not the image's library set")
            libs |= set(re.findall(r"=> (/\S+)", ldd))
        # dpkg knows a file by the path its package installed (/lib/... on a
        # merged-/usr system, the versioned file or its symlink), so ask for
        # each path as ldd prints it and as it resolves. One dpkg call: each
        # reads the whole package database.
        candidates = {lib: {lib, os.path.realpath(lib)} for lib in libs}
        owners = ds.run(["dpkg", "-S", *sorted(set().union(*candidates.values()))]).stdout
        owner_of = {}
        for line in owners.splitlines():
            package, _, path = line.partition(": ")
            for p in path.split(", "):
                owner_of[p] = package.split(":")[0]
        needed, unowned = set(), []
        for lib, paths in candidates.items():
            found = {owner_of[p] for p in paths if p in owner_of}
            needed |= found
            if not found:
                unowned.append(lib)
        self.assertEqual(unowned, [], "libraries no Debian package provides cannot be in the image")
        # Needed by dpkg and apt themselves, so in every debian-slim image.
        in_base_image = {"libc6", "libgcc-s1", "libstdc++6", "zlib1g"}
        # A sanitizer build (scripts/test.sh --sanitize) links the sanitizer
        # runtimes; the image is built without them.
        needed = {p for p in needed if not re.match(r"lib(asan|ubsan|lsan|tsan)\d", p)}
        self.assertTrue(needed, "ldd found no packaged libraries")
        self.assertEqual(sorted(needed - in_base_image - listed), [],
                         "corrald/corralctl link libraries the runtime stage does not install")

    def test_dockerignore_keeps_build_trees_out_of_the_context(self):
        with open(ds.src(".dockerignore")) as f:
            lines = {l.strip() for l in f if l.strip() and not l.startswith("#")}
        self.assertLessEqual({".git", "/build*"}, lines)


# --- compose -----------------------------------------------------------------------

class Compose(ds.TestCase):
    def setUp(self):
        super().setUp()
        with open(COMPOSE) as f:
            self.doc = yaml.safe_load(f)
        self.services = self.doc["services"]
        self.corrald = {n: s for n, s in self.services.items() if s.get("image") == "corrald:local"}

    def test_docker_compose_validates_it(self):
        out = ds.run([ds.require_tool("docker-compose"), "-f", COMPOSE, "config", "-q"],
                     cwd=tempfile.gettempdir())
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)

    def test_redis_two_replicas_and_prometheus(self):
        self.assertIn("redis", self.services)
        self.assertIn("prometheus", self.services)
        self.assertEqual(len(self.corrald), 2)

    def test_corrald_services(self):
        base = os.path.dirname(COMPOSE)
        host_ports = []
        for name, svc in self.corrald.items():
            with self.subTest(service=name):
                ds.assert_known_flags(self, svc["command"], f"compose {name}")
                build = svc["build"]
                self.assertTrue(os.path.isfile(os.path.join(base, build["context"], build["dockerfile"])))
                redis = flag(svc["command"], "redis")
                self.assertRegex(redis, r"^redis://redis:6379")
                self.assertEqual(svc["depends_on"]["redis"]["condition"], "service_healthy")
                for volume in svc["volumes"]:
                    host, container, *_ = volume.split(":")
                    self.assertTrue(os.path.exists(os.path.join(base, host)), host)
                    if container == flag(svc["command"], "config"):
                        with open(os.path.join(base, host)) as f:
                            drain = drain_seconds(f.read())
                self.assertGreaterEqual(duration_s(svc["stop_grace_period"]), drain + RELEASE_LOCKS_S)
                listen = port_of(flag(svc["command"], "listen_address"))
                metrics = port_of(flag(svc["command"], "metrics_address"))
                container_ports = {int(p.rsplit(":", 1)[1]) for p in svc["ports"]}
                self.assertEqual(container_ports, {listen, metrics})
                host_ports += [p.rsplit(":", 2)[1] for p in svc["ports"]]
        self.assertEqual(len(host_ports), len(set(host_ports)), "host ports collide")

    def test_prometheus_scrapes_both_replicas_with_the_rules(self):
        base = os.path.dirname(COMPOSE)
        prom = self.services["prometheus"]
        host_dir = None
        for volume in prom["volumes"]:
            host, container, *_ = volume.split(":")
            if container == "/etc/prometheus":
                host_dir = os.path.join(base, host)
        config_arg = [a for a in prom["command"] if a.startswith("--config.file=")][0]
        config_path = os.path.join(host_dir, os.path.relpath(config_arg.split("=", 1)[1], "/etc/prometheus"))
        with open(config_path) as f:
            config = yaml.safe_load(f)
        for rules in config["rule_files"]:
            self.assertTrue(os.path.isfile(os.path.join(host_dir, rules)), rules)
        job = [j for j in config["scrape_configs"] if j["job_name"] == "corrald"][0]
        targets = {t for c in job["static_configs"] for t in c["targets"]}
        expected = {f"{n}:{port_of(flag(s['command'], 'metrics_address'))}"
                    for n, s in self.corrald.items()}
        self.assertEqual(targets, expected)


class ComposeSentinel(ds.TestCase):
    """deploy/compose-sentinel.yaml: a master, a replica, three sentinels and two
    corralds on a redis-sentinel:// URI naming every sentinel."""

    PATH = ds.src("deploy", "compose-sentinel.yaml")

    def setUp(self):
        super().setUp()
        with open(self.PATH) as f:
            self.services = yaml.safe_load(f)["services"]

    def test_docker_compose_validates_it(self):
        out = ds.run([ds.require_tool("docker-compose"), "-f", self.PATH, "config", "-q"],
                     cwd=tempfile.gettempdir())
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)

    def test_corrald_follows_the_sentinels(self):
        sentinels = sorted(n for n in self.services if n.startswith("sentinel-"))
        self.assertEqual(len(sentinels), 3)
        for name in sentinels:
            script = self.services[name]["command"][-1]
            self.assertIn("sentinel monitor corral redis-primary 6379 2", script)
        replica = self.services["redis-replica"]["command"]
        self.assertEqual(replica[replica.index("--replicaof") + 1], "redis-primary")
        corrald = {n: s for n, s in self.services.items() if s.get("image") == "corrald:local"}
        self.assertEqual(len(corrald), 2)
        for name, svc in corrald.items():
            with self.subTest(service=name):
                ds.assert_known_flags(self, svc["command"], f"compose-sentinel {name}")
                self.assertEqual(
                    flag(svc["command"], "redis"),
                    "redis-sentinel://" + ",".join(f"{n}:26379" for n in sentinels) + "/corral")


class ComposeCluster(ds.TestCase):
    """deploy/compose-cluster.yaml: six cluster-enabled Redis nodes, a one-shot
    `redis-cli --cluster create ... --cluster-replicas 1`, and two corralds on
    a redis-cluster:// URI that wait for it."""

    PATH = ds.src("deploy", "compose-cluster.yaml")

    def setUp(self):
        super().setUp()
        with open(self.PATH) as f:
            self.services = yaml.safe_load(f)["services"]

    def test_docker_compose_validates_it(self):
        out = ds.run([ds.require_tool("docker-compose"), "-f", self.PATH, "config", "-q"],
                     cwd=tempfile.gettempdir())
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)

    def test_six_nodes_made_one_cluster(self):
        nodes = sorted(n for n in self.services if n.startswith("redis-"))
        self.assertEqual(len(nodes), 6)
        for name in nodes:
            script = self.services[name]["command"][-1]
            self.assertIn("--cluster-enabled yes", script, name)
            self.assertIn("--cluster-preferred-endpoint-type hostname", script, name)
        init = self.services["cluster-init"]["command"][-1]
        self.assertIn("--cluster-replicas 1", init)
        for name in nodes:
            self.assertIn(name, init)

    def test_corrald_routes_by_slot(self):
        corrald = {n: s for n, s in self.services.items() if s.get("image") == "corrald:local"}
        self.assertEqual(len(corrald), 2)
        for name, svc in corrald.items():
            with self.subTest(service=name):
                ds.assert_known_flags(self, svc["command"], f"compose-cluster {name}")
                self.assertTrue(flag(svc["command"], "redis").startswith("redis-cluster://"))
                self.assertEqual(svc["depends_on"]["cluster-init"]["condition"],
                                 "service_completed_successfully")


# --- Kubernetes --------------------------------------------------------------------

def k8s_docs():
    docs = {}
    for root, _, files in os.walk(K8S):
        for name in files:
            if name.endswith(".yaml"):
                with open(os.path.join(root, name)) as f:
                    docs[os.path.relpath(os.path.join(root, name), K8S)] = [
                        d for d in yaml.safe_load_all(f) if d]
    return docs


def by_kind(kind):
    return [d for docs in k8s_docs().values() for d in docs if d.get("kind") == kind]


def config_secret():
    """The Secret holding corrald's config file."""
    found = [s for s in by_kind("Secret") if "corrald.textproto" in s.get("stringData", {})]
    if len(found) != 1:
        raise AssertionError(f"expected one Secret with corrald.textproto, found {len(found)}")
    return found[0]


class Kubernetes(ds.TestCase):
    def setUp(self):
        super().setUp()
        self.deployment = by_kind("Deployment")[0]
        self.pod = self.deployment["spec"]["template"]
        self.container = self.pod["spec"]["containers"][0]
        self.ports = {p["name"]: p["containerPort"] for p in self.container["ports"]}
        self.config_secret = config_secret()
        self.config_text = self.config_secret["stringData"]["corrald.textproto"]

    def matches_pods(self, selector):
        labels = self.pod["metadata"]["labels"]
        return all(labels.get(k) == v for k, v in selector.items())

    def test_every_manifest_parses_and_is_listed_in_a_kustomization(self):
        docs = k8s_docs()
        listed = set()
        for path, content in docs.items():
            for d in content:
                self.assertIn("kind", d, path)
                if d["kind"] == "Kustomization":
                    for r in d["resources"]:
                        listed.add(os.path.normpath(os.path.join(os.path.dirname(path), r)))
        manifests = {p for p, c in docs.items() if not any(d["kind"] == "Kustomization" for d in c)}
        self.assertEqual(manifests, listed)
        kinds = {d["kind"] for c in docs.values() for d in c}
        self.assertLessEqual({"Deployment", "Service", "Secret", "NetworkPolicy",
                              "PodDisruptionBudget", "PodMonitor", "PrometheusRule"}, kinds)
        # The config holds credentials: never in a ConfigMap.
        for cm in by_kind("ConfigMap"):
            self.assertNotIn("corrald.textproto", cm.get("data", {}))

    def test_deployment(self):
        spec = self.deployment["spec"]
        self.assertGreaterEqual(spec["replicas"], 2)
        self.assertTrue(self.matches_pods(spec["selector"]["matchLabels"]))
        ds.assert_known_flags(self, self.container["args"], "deployment args")
        args = self.container["args"]
        self.assertEqual(self.ports["grpc"], port_of(flag(args, "listen_address")))
        self.assertEqual(self.ports["metrics"], port_of(flag(args, "metrics_address")))
        self.assertTrue(flag(args, "listen_address").startswith("0.0.0.0:"))
        self.assertTrue(flag(args, "metrics_address").startswith("0.0.0.0:"))
        installed = Dockerfile.installed_paths_of(dockerfile())
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            with self.subTest(probe=probe):
                # gRPC probes cannot speak TLS: corralctl health over TLS, on
                # the gRPC port, trusting the CA of the mounted TLS Secret.
                self.assertNotIn("grpc", self.container[probe])
                argv = self.container[probe]["exec"]["command"]
                self.assertIn(argv[0], installed)
                self.assertEqual(os.path.basename(argv[0]), "corralctl")
                self.assertEqual(argv[-1], "health")
                self.assertEqual(port_of(argv[argv.index("--target") + 1]), self.ports["grpc"])
                self.assertEqual(argv[argv.index("--tls-ca") + 1], self.tls_file("ca.crt"))
                self.assertNotIn("--token", argv)  # Health needs none; argv is visible.
        resources = self.container["resources"]
        for kind in ("requests", "limits"):
            self.assertLessEqual({"cpu", "memory"}, set(resources[kind]), kind)

    def test_runs_as_the_images_user(self):
        uid = [a for _, i, a in dockerfile() if i == "USER"][0].split(":")[0]
        sc = self.pod["spec"]["securityContext"]
        self.assertTrue(sc["runAsNonRoot"])
        self.assertEqual(str(sc["runAsUser"]), uid)
        self.assertTrue(self.container["securityContext"]["readOnlyRootFilesystem"])

    def test_termination_grace_covers_prestop_drain_and_lock_release(self):
        drain = drain_seconds(self.config_text)
        pre_stop = self.container["lifecycle"]["preStop"]["exec"]["command"]
        self.assertEqual(pre_stop[0], "/bin/sleep")  # coreutils, in debian-slim
        grace = self.pod["spec"]["terminationGracePeriodSeconds"]
        self.assertGreaterEqual(grace, int(pre_stop[1]) + drain + RELEASE_LOCKS_S)

    def secret_volume_of(self, path):
        """The Secret volume mounted where `path` lies; checks it is private."""
        mount = [m for m in self.container["volumeMounts"]
                 if path.startswith(m["mountPath"] + "/")][0]
        self.assertTrue(mount.get("readOnly"), mount)
        volume = [v for v in self.pod["spec"]["volumes"] if v["name"] == mount["name"]][0]
        self.assertIn("secret", volume, f"{path} must come from a Secret")
        # Readable by the owner and the pod's fsGroup (kubelet makes the
        # files root-owned, group fsGroup): never world-readable.
        mode = volume["secret"]["defaultMode"]
        self.assertEqual(mode & 0o007, 0, oct(mode))
        self.assertEqual(mode & 0o222, 0, oct(mode))
        sc = self.pod["spec"]["securityContext"]
        self.assertEqual(sc["fsGroup"], sc["runAsGroup"])
        return volume["secret"], mount

    def tls_file(self, name):
        tls_key = flag(self.container["args"], "tls_key")
        self.assertIsNotNone(tls_key)
        return os.path.join(os.path.dirname(tls_key), name)

    def test_config_secret_is_mounted_where_config_points(self):
        config = flag(self.container["args"], "config")
        secret, _ = self.secret_volume_of(config)
        self.assertEqual(secret["secretName"], self.config_secret["metadata"]["name"])
        self.assertIn(os.path.basename(config), self.config_secret["stringData"])

    def test_credentials_required_and_unknown_namespaces_refused(self):
        config = uncommented(self.config_text)
        self.assertRegex(config, r"(?m)^\s*forbid_unknown_namespaces:\s*true\s*$")
        hashes = re.findall(r'credentials\s*\{[^}]*token_sha256:\s*"([0-9a-f]{64})"', config)
        self.assertTrue(hashes, "no credentials: every caller could do everything")
        # The listed namespaces are what credentials grant.
        listed = set(re.findall(r'namespaces\s*\{\s*name:\s*"([^"]+)"', config))
        granted = set(re.findall(r'credentials\s*\{[^}]*?namespaces:\s*"([^"]+)"', config))
        self.assertTrue(listed)
        self.assertLessEqual(granted - {"*"}, listed)

    def test_tls_is_served_from_a_secret(self):
        args = self.container["args"]
        cert, key = flag(args, "tls_cert"), flag(args, "tls_key")
        self.assertIsNotNone(cert, "plaintext gRPC on 0.0.0.0")
        self.assertIsNotNone(key)
        cert_secret, cert_mount = self.secret_volume_of(cert)
        key_secret, _ = self.secret_volume_of(key)
        self.assertEqual(cert_secret, key_secret)
        self.assertEqual(cert_secret["secretName"], "corrald-tls")
        # kubernetes.io/tls and cert-manager key names.
        self.assertEqual((os.path.basename(cert), os.path.basename(key)), ("tls.crt", "tls.key"))
        self.assertNotIn("optional", cert_secret)  # No Secret: no plaintext fallback.
        # The Secret carries a private key: it is not shipped in the manifests.
        self.assertNotIn("corrald-tls", {s["metadata"]["name"] for s in by_kind("Secret")})
        self.assertTrue(cert_mount["mountPath"].startswith("/etc/corral/"))

    def test_network_policy_admits_only_labelled_clients_and_prometheus(self):
        policies = [p for p in by_kind("NetworkPolicy")
                    if self.matches_pods(p["spec"]["podSelector"]["matchLabels"])]
        self.assertEqual(len(policies), 1)
        spec = policies[0]["spec"]
        self.assertIn("Ingress", spec["policyTypes"])
        covered = set()
        for rule in spec["ingress"]:
            with self.subTest(rule=rule):
                # An empty or missing `from` admits every source.
                self.assertTrue(rule.get("from"), "a rule open to everyone")
                for peer in rule["from"]:
                    self.assertNotIn("ipBlock", peer)
                    self.assertTrue(any(sel.get("matchLabels") or sel.get("matchExpressions")
                                        for sel in (peer.get("podSelector") or {},
                                                    peer.get("namespaceSelector") or {})), peer)
                self.assertTrue(rule.get("ports"), "a rule open on every port")
                for p in rule["ports"]:
                    self.assertIn(p["port"], self.ports)
                    covered.add(p["port"])
        self.assertEqual(covered, {"grpc", "metrics"})
        grpc_rules = [r for r in spec["ingress"] if any(p["port"] == "grpc" for p in r["ports"])]
        self.assertTrue(all(peer.get("podSelector") for r in grpc_rules for peer in r["from"]))

    def test_services_and_budget_select_the_pods(self):
        services = by_kind("Service")
        self.assertEqual({s["spec"].get("clusterIP") for s in services}, {None, "None"})
        for svc in services:
            with self.subTest(service=svc["metadata"]["name"]):
                self.assertTrue(self.matches_pods(svc["spec"]["selector"]))
                for p in svc["spec"]["ports"]:
                    self.assertIn(p["targetPort"], self.ports)
        pdb = by_kind("PodDisruptionBudget")[0]
        self.assertTrue(self.matches_pods(pdb["spec"]["selector"]["matchLabels"]))
        self.assertLess(pdb["spec"]["maxUnavailable"], self.deployment["spec"]["replicas"])

    def test_pod_monitor_scrapes_the_metrics_port_as_job_corrald(self):
        monitor = by_kind("PodMonitor")[0]
        self.assertTrue(self.matches_pods(monitor["spec"]["selector"]["matchLabels"]))
        self.assertEqual([e["port"] for e in monitor["spec"]["podMetricsEndpoints"]], ["metrics"])
        self.assertEqual(self.pod["metadata"]["labels"][monitor["spec"]["jobLabel"]], "corrald")


# --- systemd -----------------------------------------------------------------------

def unit_values(key):
    with open(UNIT) as f:
        return [l.split("=", 1)[1].strip() for l in f if l.startswith(f"{key}=")]


class Systemd(ds.TestCase):
    def test_unit_settings(self):
        argv = shlex.split(unit_values("ExecStart")[0])
        self.assertEqual(argv[0], "/usr/local/bin/corrald")
        ds.assert_known_flags(self, argv[1:], "ExecStart")
        self.assertEqual(unit_values("Restart"), ["on-failure"])
        self.assertEqual(unit_values("DynamicUser"), ["yes"])
        self.assertEqual(unit_values("ProtectSystem"), ["strict"])
        with open(EXAMPLE_CONFIG) as f:
            drain = drain_seconds(f.read())
        self.assertGreaterEqual(duration_s(unit_values("TimeoutStopSec")[0].rstrip("s")),
                                drain + RELEASE_LOCKS_S)

    def test_secrets_come_through_load_credential_and_tls_is_on(self):
        argv = shlex.split(unit_values("ExecStart")[0])
        loaded = dict(v.split(":", 1) for v in unit_values("LoadCredential"))
        for name in ("config", "tls_cert", "tls_key"):
            with self.subTest(flag=name):
                path = flag(argv, name)
                self.assertIsNotNone(path, f"ExecStart lacks --{name}")
                # Not the on-disk file (root-only): systemd's private copy.
                prefix = "${CREDENTIALS_DIRECTORY}/"
                self.assertTrue(path.startswith(prefix), path)
                self.assertIn(path[len(prefix):], loaded)
                self.assertTrue(loaded[path[len(prefix):]].startswith("/etc/corral/"))
        with open(UNIT) as f:
            header = f.read()
        self.assertNotRegex(header, r"install -m 06[4-7]4 .*corrald\.textproto",
                            "the config holds credentials: not world-readable")

    def _analyze(self, *args):
        tool = ds.run(["sh", "-c", "command -v systemd-analyze"]).stdout.strip()
        if not tool:
            self.skipTest("systemd-analyze is not installed (it comes with systemd)")
        with tempfile.TemporaryDirectory() as d:
            # verify insists that ExecStart exists: point it at this build.
            with open(UNIT) as f:
                text = f.read().replace("/usr/local/bin/corrald", ds.CORRALD)
            path = os.path.join(d, "corrald.service")
            with open(path, "w") as f:
                f.write(text)
            return ds.run([tool, *args, path])

    def test_systemd_analyze_verify(self):
        out = self._analyze("verify")
        text = out.stdout + out.stderr
        if out.returncode != 0 and re.search(r"bus|Failed to (initialize|connect)", text, re.I):
            self.skipTest(f"systemd-analyze cannot run in this environment: {text.strip()}")
        self.assertEqual(out.returncode, 0, text)
        self.assertNotRegex(text, r"Unknown (key|section|lvalue)|[Ii]gnoring|[Ii]nvalid", text)

    def test_sandbox_exposure_is_low(self):
        # systemd's own score: 0 (locked down) .. 10 (exposed); ours is ~1.4.
        out = self._analyze("security", "--offline=yes", "--threshold=20")
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)


# --- every deployment's command line starts a real corrald --------------------------

def local_argv(argv, grpc_port, files):
    """A deployment's corralctl command line, run here: this build's
    corralctl, this corrald's port (same host name), local copies of files."""
    argv = [files.get(a, a) for a in argv]
    argv[0] = ds.CORRALCTL
    i = argv.index("--target") + 1
    argv[i] = f"{argv[i].rsplit(':', 1)[0]}:{grpc_port}"
    return argv


class TestsOwnRedis(ds.TestCase):
    def test_a_port_another_redis_holds_is_not_taken_for_ours(self):
        """free_port() races other tests: when the port it found is bound by
        another test's Redis first, ours must not settle for that one (it
        vanishes when that test ends: corrald then refuses every call with
        "store unavailable ... Connection refused", health still SERVING)."""
        procs = self.processes()
        theirs = procs.redis()  # Stands for another test's Redis.
        real_free_port = ds.free_port
        ports = iter([theirs])
        ds.free_port = lambda: next(ports, None) or real_free_port()
        self.addCleanup(setattr, ds, "free_port", real_free_port)
        ours = procs.redis()
        self.assertNotEqual(ours, theirs)
        self.assertEqual(ds.redis_process_id(ours), procs.procs[-1].pid)


class DeploymentsStartCorrald(ds.TestCase):
    def launch(self, args, config_text, health=None, files=None, check=None):
        """Runs corrald with a deployment's args, its config and a test Redis;
        checks its health command (default: the container HEALTHCHECK)
        passes, metrics flow, SIGTERM is clean. `files` maps the
        deployment's paths (TLS) to local ones; `check(grpc_port)` runs
        more checks against the live corrald."""
        files = files or {}
        procs = self.processes()
        if not hasattr(self, "redis_port"):
            self.redis_port = procs.redis()
        config = os.path.join(procs.dir, f"config-{len(procs.procs)}.textproto")
        with open(config, "w") as f:
            f.write(config_text)
        local = []
        for a in args:
            name = a[2:].split("=", 1)[0] if a.startswith("--") else None
            if name == "config":
                a = f"--config={config}"
            elif name in ("listen_address", "metrics_address"):
                a = f"--{name}=127.0.0.1:0"
            elif name == "redis":
                continue
            elif name in ("tls_cert", "tls_key", "tls_client_ca"):
                path = a.split("=", 1)[1]
                self.assertIn(path, files, f"no local file for --{name}")
                a = f"--{name}={files[path]}"
            local.append(a)
        local.append(f"--redis=redis://127.0.0.1:{self.redis_port}")
        proc, grpc_port, metrics_port = procs.corrald(local)

        if health is None:
            entry = [a for _, i, a in dockerfile() if i == "HEALTHCHECK"][0]
            health = exec_form(entry[entry.index("CMD") + 3:].strip())
        out = ds.run(local_argv(health, grpc_port, files), timeout=10)
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        self.assertIn("SERVING", out.stdout + out.stderr)
        if check:
            check(grpc_port)

        metrics = ds.scrape(metrics_port)
        self.assertRegex(metrics, r"(?m)^corral_store_up 1")
        exported = set(re.findall(r"(?m)^(corral_\w+?)(?:\{| )", metrics))
        self.assertLessEqual(exported, ds.KNOWN_METRICS,
                             "corrald exports metrics the rules/dashboard contract "
                             "(tests/deploy/deploy_support.py, docs/OPERATIONS.md) lacks")
        self.assertEqual(procs.stop(proc), 0)

    def test_docker_image_cmd_and_config(self):
        cmd = exec_form([a for _, i, a in dockerfile() if i == "CMD"][0])
        with open(EXAMPLE_CONFIG) as f:
            self.launch(cmd, f.read())

    def test_compose_command(self):
        with open(COMPOSE) as f:
            compose = yaml.safe_load(f)
        with open(EXAMPLE_CONFIG) as f:
            self.launch(compose["services"]["corrald-1"]["command"], f.read())

    def test_kubernetes_args_config_secret_and_tls(self):
        """The Deployment's args with its config Secret serve TLS with the
        certificate of a corrald-tls Secret, pass their own probe, and refuse
        calls without a token and, with one, namespaces the config does not
        list."""
        container = by_kind("Deployment")[0]["spec"]["template"]["spec"]["containers"][0]
        probe = container["readinessProbe"]["exec"]["command"]
        tls_dir = os.path.dirname(flag(container["args"], "tls_key"))
        pki_dir = tempfile.mkdtemp(prefix="corral-deploy-pki-", dir=self.processes().dir)
        files = {os.path.join(tls_dir, n): p for n, p in make_server_pki(pki_dir).items()}
        # A known token in place of the shipped placeholder hash.
        token = "deploy-test-token-5d1c"
        text = config_secret()["stringData"]["corrald.textproto"]
        placeholder = re.search(r'token_sha256:\s*"([0-9a-f]{64})"', uncommented(text)).group(1)
        text = text.replace(placeholder, hashlib.sha256(token.encode()).hexdigest())
        ns = re.search(r'namespaces\s*\{\s*name:\s*"([^"]+)"', text).group(1)
        # And one for every namespace, to meet forbid_unknown_namespaces.
        any_ns = "deploy-test-any-namespace-91e0"
        text += ('credentials { name: "deploy-test-any" token_sha256: "'
                 + hashlib.sha256(any_ns.encode()).hexdigest()
                 + '" namespaces: "*" rights: READ }\n')

        def check(grpc_port):
            base = local_argv(probe, grpc_port, files)[:-1]  # corralctl --target --tls-ca ...

            def ctl(*args, token=None):
                env = {k: v for k, v in os.environ.items() if k != "CORRAL_TOKEN"}
                if token:
                    env["CORRAL_TOKEN"] = token
                return ds.run([*base, *args], timeout=10, env=env)
            plain = ds.run([ds.CORRALCTL, "--target", f"127.0.0.1:{grpc_port}", "--timeout",
                            "2s", "health"], timeout=10)
            self.assertNotEqual(plain.returncode, 0, "plaintext reached a TLS listener")
            out = ctl("get", ns, "k")
            self.assertEqual(out.returncode, 3, out.stdout + out.stderr)
            self.assertIn("UNAUTHENTICATED", out.stderr)
            out = ctl("get", ns, "k", token=token)
            self.assertEqual(out.returncode, 1, out.stdout + out.stderr)  # Not found: allowed.
            out = ctl("get", "not-listed", "k", token=token)
            self.assertEqual(out.returncode, 3, out.stdout + out.stderr)
            self.assertIn("PERMISSION_DENIED", out.stderr)
            out = ctl("get", "not-listed", "k", token=any_ns)
            self.assertEqual(out.returncode, 3, out.stdout + out.stderr)
            self.assertIn("NOT_FOUND", out.stderr)
            self.assertEqual(ctl("get", ns, "k", token=any_ns).returncode, 1)
        self.launch(container["args"], text, health=probe, files=files, check=check)

    def test_systemd_exec_start(self):
        argv = shlex.split(unit_values("ExecStart")[0])
        pki_dir = tempfile.mkdtemp(prefix="corral-deploy-pki-", dir=self.processes().dir)
        pki = make_server_pki(pki_dir)
        files = {flag(argv, "tls_cert"): pki["tls.crt"], flag(argv, "tls_key"): pki["tls.key"]}
        health = ["corralctl", "--target", "127.0.0.1:0", "--tls-ca", pki["ca.crt"],
                  "--timeout", "2s", "health"]
        with open(EXAMPLE_CONFIG) as f:
            self.launch(argv[1:], f.read(), health=health, files=files)


if __name__ == "__main__":
    unittest.main(verbosity=2)
