"""The Python clients warn (corral.PlaintextTokenWarning) when they would send a
bearer token without TLS to a target beyond this host, and stay silent for
loopback targets, TLS, no token, or a channel the caller built.

Channels are lazy: constructing a client connects nowhere, so the
non-loopback targets here (192.0.2.0/24 and example.com, reserved for
documentation) see no traffic."""

import asyncio
import unittest
import warnings

import grpc

import corral
import corral.aio
from corral import _protocol

LOOPBACK = [
    "127.0.0.1:50051", "127.8.9.10:1", "localhost:50051", "LOCALHOST", "localhost.:50051",
    "[::1]:50051", "::1", "[::ffff:127.0.0.1]:50051", "dns:///localhost:50051",
    "dns://8.8.8.8/127.0.0.1:50051", "dns:[::1]:50051", "ipv4:127.0.0.1:1,127.0.0.2:2",
    "ipv6:[::1]:50051", "unix:/run/corral.sock", "unix:///run/corral.sock",
    "unix-abstract:corral",
]
REMOTE = [
    "192.0.2.1:50051", "10.0.0.1:50051", "0.0.0.0:50051", "example.com:50051",
    "corrald.default.svc:50051", "localhost.example.com:50051", "[2001:db8::1]:50051",
    "dns:///example.com:50051", "dns://127.0.0.1/example.com:50051",
    "ipv4:127.0.0.1:1,192.0.2.1:2", "ipv6:[2001:db8::1]:50051", "xds:///corrald",
    "passthrough:///127.0.0.1:50051", "128.0.0.1:50051", "",
]


class LoopbackTargetTest(unittest.TestCase):
    def test_loopback_targets(self):
        for target in LOOPBACK:
            with self.subTest(target=target):
                self.assertTrue(_protocol.is_loopback_target(target))

    def test_everything_else_is_not(self):
        for target in REMOTE:
            with self.subTest(target=target):
                self.assertFalse(_protocol.is_loopback_target(target))


class WarningTest(unittest.TestCase):
    def construct(self, make):
        """Warnings raised while `make()` builds a client (closed after)."""
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            client = make()
        closed = client.close()
        if asyncio.iscoroutine(closed):
            asyncio.run(closed)
        return [w for w in caught if issubclass(w.category, corral.PlaintextTokenWarning)]

    def test_blocking_client_warns_once_at_the_callers_line(self):
        found = self.construct(lambda: corral.Client("192.0.2.1:50051", token="secret-token"))
        self.assertEqual(len(found), 1)
        message = str(found[0].message)
        self.assertIn("'192.0.2.1:50051'", message)
        self.assertIn("plaintext", message)
        self.assertNotIn("secret-token", message)
        self.assertEqual(found[0].filename, __file__)  # The constructing line, not corral's.

    def test_async_client_warns(self):
        async def make():
            return corral.aio.AsyncClient("example.com:50051", token="secret-token")

        async def run():
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                client = await make()
            await client.close()
            return [w for w in caught if issubclass(w.category, corral.PlaintextTokenWarning)]
        found = asyncio.run(run())
        self.assertEqual(len(found), 1)
        self.assertEqual(found[0].filename, __file__)

    def test_it_is_a_warning_not_an_error(self):
        self.assertTrue(issubclass(corral.PlaintextTokenWarning, UserWarning))
        self.assertFalse(issubclass(corral.PlaintextTokenWarning, corral.CorralError))

    def test_silent_on_loopback_with_tls_without_token_or_with_own_channel(self):
        tls = grpc.ssl_channel_credentials()
        cases = {
            "loopback": lambda: corral.Client("127.0.0.1:50051", token="t"),
            "localhost": lambda: corral.Client("localhost:50051", token="t"),
            "unix": lambda: corral.Client("unix:/tmp/corral.sock", token="t"),
            "tls": lambda: corral.Client("192.0.2.1:50051", token="t", credentials=tls),
            "no token": lambda: corral.Client("192.0.2.1:50051"),
            "empty token": lambda: corral.Client("192.0.2.1:50051", token=""),
            "own channel": lambda: corral.Client(
                channel=grpc.insecure_channel("192.0.2.1:50051"), token="t"),
        }
        for name, make in cases.items():
            with self.subTest(name):
                self.assertEqual(self.construct(make), [])

    def test_async_client_silent_with_tls(self):
        async def run():
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                client = corral.aio.AsyncClient("192.0.2.1:50051", token="t",
                                                credentials=grpc.ssl_channel_credentials())
            await client.close()
            return [w for w in caught if issubclass(w.category, corral.PlaintextTokenWarning)]
        self.assertEqual(asyncio.run(run()), [])

    def test_an_error_filter_turns_it_into_an_exception(self):
        with warnings.catch_warnings():
            warnings.simplefilter("error", corral.PlaintextTokenWarning)
            with self.assertRaises(corral.PlaintextTokenWarning):
                corral.Client("10.1.2.3:50051", token="t")


if __name__ == "__main__":
    unittest.main()
