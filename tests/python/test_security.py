"""The Python clients against a real corrald with bearer-token credentials
and mutual TLS (certificates made by the openssl tool at test time): tokens
and client certificates work, their absence is refused, and health and
server reflection stay open to anyone who completes the handshake."""

import asyncio
import hashlib
import os
import shutil
import subprocess
import tempfile
import unittest

import grpc

import corral_testing
from corral_testing import unique_key
import corral
import corral.aio

TOKEN = "py-token-2c7e9a41"
READ_ONLY_TOKEN = "py-read-only-6b03d5f8"


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_pki(d):
    """A CA; a server certificate for 127.0.0.1; a client certificate."""
    curve = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl("req", "-x509", *curve, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
            "-subj", "/CN=py-ca", "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign", cwd=d)
    for name, ext in (("server", "extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1\n"),
                      ("client", "extendedKeyUsage=clientAuth\n")):
        with open(os.path.join(d, f"{name}.ext"), "w") as f:
            f.write(ext)
        openssl("req", "-new", *curve, "-keyout", f"{name}.key", "-out", f"{name}.csr",
                "-subj", f"/CN={name}", cwd=d)
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                "-set_serial", "7" if name == "server" else "8", "-days", "2",
                "-extfile", f"{name}.ext", "-out", f"{name}.pem", cwd=d)

    def read(name):
        with open(os.path.join(d, name), "rb") as f:
            return f.read()
    return {n: read(n) for n in ("ca.pem", "server.pem", "server.key", "client.pem", "client.key")}


def credential(name, token, rights):
    sha = hashlib.sha256(token.encode()).hexdigest()
    return (f'credentials {{ name: "{name}" token_sha256: "{sha}" namespaces: "py" '
            + " ".join(f"rights: {r}" for r in rights) + " }\n")


class SecurityTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="corral-pysec-")
        cls.addClassCleanup(shutil.rmtree, cls.dir, ignore_errors=True)
        cls.pem = make_pki(cls.dir)
        config = os.path.join(cls.dir, "corrald.textproto")
        with open(config, "w") as f:
            f.write(credential("py", TOKEN, ["READ", "COMPUTE", "LOCK", "ADMIN"]))
            f.write(credential("py-reader", READ_ONLY_TOKEN, ["READ"]))
        d = cls.dir
        cls.fleet = corral_testing.Fleet(replicas=1, redis=False, corrald_args=[
            f"--config={config}", f"--tls_cert={d}/server.pem", f"--tls_key={d}/server.key",
            f"--tls_client_ca={d}/ca.pem"])
        cls.addClassCleanup(cls.fleet.stop)
        cls.target = cls.fleet.targets[0]

    def creds(self, with_client_cert=True):
        if not with_client_cert:
            return grpc.ssl_channel_credentials(root_certificates=self.pem["ca.pem"])
        return grpc.ssl_channel_credentials(root_certificates=self.pem["ca.pem"],
                                            private_key=self.pem["client.key"],
                                            certificate_chain=self.pem["client.pem"])

    def client(self, token=TOKEN, **kw):
        kw.setdefault("credentials", self.creds())
        c = corral.Client(self.target, timeout=5, token=token,
                          retry=corral.RetryPolicy(max_attempts=1), **kw)
        self.addCleanup(c.close)
        return c

    def test_token_and_client_certificate_work(self):
        c = self.client()
        key = unique_key()
        self.assertEqual(c.get_or_compute("py", key, lambda: "Rosa"), b"Rosa")
        self.assertEqual(c.get("py", key).value, b"Rosa")
        with c.lock("py", key, ttl=10, wait_timeout=0) as lock:
            self.assertTrue(lock.token)

    def test_missing_or_unknown_token_is_unauthenticated(self):
        for token in (None, "not-a-known-token"):
            with self.subTest(token=token):
                with self.assertRaises(corral.Unauthenticated) as cm:
                    self.client(token=token).get("py", "k")
                self.assertEqual(cm.exception.reason, "unauthenticated")

    def test_rights_and_namespaces_are_permission_denied(self):
        with self.assertRaises(corral.PermissionDenied):
            self.client().get("elsewhere", "k")
        reader = self.client(token=READ_ONLY_TOKEN)
        with self.assertRaises(corral.PermissionDenied) as cm:
            reader.set("py", "k", "v")
        self.assertEqual(cm.exception.reason, "permission-denied")
        key = unique_key()
        # Read-only: a miss is refused without running compute, a hit served.
        with self.assertRaises(corral.PermissionDenied):
            reader.get_or_compute("py", key, lambda: self.fail("compute ran"))
        self.client().set("py", key, "cached")
        self.assertEqual(reader.get_or_compute("py", key, lambda: self.fail("compute ran")),
                         b"cached")

    def test_async_client_sends_the_token(self):
        async def run():
            async with corral.aio.AsyncClient(self.target, timeout=5, token=TOKEN,
                                              credentials=self.creds()) as c:
                key = unique_key()
                self.assertEqual(await c.get_or_compute("py", key, lambda: b"Tulipa"), b"Tulipa")
            async with corral.aio.AsyncClient(self.target, timeout=5,
                                              credentials=self.creds()) as anonymous:
                with self.assertRaises(corral.Unauthenticated):
                    await anonymous.get("py", "k")
        asyncio.run(run())

    def test_no_client_certificate_no_connection(self):
        with self.assertRaises(corral.Unavailable):
            self.client(credentials=self.creds(with_client_cert=False)).get("py", "k")

    def test_health_and_reflection_need_no_token(self):
        channel = grpc.secure_channel(self.target, self.creds())
        self.addCleanup(channel.close)
        check = channel.unary_unary("/grpc.health.v1.Health/Check")
        # HealthCheckResponse{status: SERVING}: field 1, varint 1.
        self.assertEqual(check(b"", timeout=5), b"\x08\x01")
        reflect = channel.stream_stream(
            "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo")
        # ServerReflectionRequest{list_services: "*"}.
        replies = list(reflect(iter([b"\x3a\x01*"]), timeout=5))
        self.assertIn(b"corral.v1.Corral", replies[0])


if __name__ == "__main__":
    unittest.main()
