"""The near cache's rules (corral._nearcache), without a server: sessions,
tickets, grants counted from the send, LRU bounds by entries and bytes."""

import unittest

from corral._nearcache import ENTRY_OVERHEAD, Backoff, NearCache, NearCacheLimits

K = ("ns", b"key")


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


class NearCacheTest(unittest.TestCase):
    def setUp(self):
        self.clock = Clock()
        self.cache = NearCache(NearCacheLimits(max_entries=3, max_bytes=10_000), clock=self.clock)
        self.cache.start(b"session-1")

    def fill(self, key=K, value=b"v", near_for=10.0, age=0.0, ttl=60.0):
        t = self.cache.ticket(key)
        return self.cache.plant(t, value, near_for, age, ttl)

    def test_nothing_is_kept_without_a_session(self):
        cache = NearCache(clock=self.clock)
        self.assertIsNone(cache.ticket(K))
        cache.start(b"s")
        self.assertIsNotNone(cache.ticket(K))

    def test_a_planted_value_is_served_until_its_grant_counted_from_the_send(self):
        t = self.cache.ticket(K)
        self.clock.now += 2.0  # The answer took 2 s.
        self.assertTrue(self.cache.plant(t, b"v", 10.0, 1.0, 60.0))
        self.assertEqual(self.cache.lookup(K).value, b"v")
        age, ttl = self.cache.age_and_ttl(self.cache.lookup(K))
        self.assertEqual((age, ttl), (3.0, 58.0))
        self.clock.now += 7.999
        self.assertIsNotNone(self.cache.lookup(K))
        self.clock.now += 0.001  # 10 s after the send.
        self.assertIsNone(self.cache.lookup(K))
        self.assertEqual(len(self.cache), 0)

    def test_no_grant_or_a_grant_already_over_plants_nothing(self):
        self.assertFalse(self.fill(near_for=0.0))
        t = self.cache.ticket(K)
        self.clock.now += 5.0
        self.assertFalse(self.cache.plant(t, b"v", 5.0, 0.0, 60.0))
        self.assertIsNone(self.cache.lookup(K))

    def test_an_invalidation_during_the_get_spoils_its_ticket(self):
        t = self.cache.ticket(K)
        other = self.cache.ticket(("ns", b"other"))
        self.cache.invalidate([K])
        self.assertFalse(self.cache.plant(t, b"old", 10.0, 0.0, 60.0))
        self.assertIsNone(self.cache.lookup(K))
        self.assertTrue(self.cache.plant(other, b"x", 10.0, 0.0, 60.0))
        # The next Get of the key is not spoiled by the old invalidation.
        self.assertTrue(self.fill())

    def test_an_invalidation_after_the_answer_removes_the_entry(self):
        self.assertTrue(self.fill())
        self.cache.invalidate([K, ("ns", b"absent")])
        self.assertIsNone(self.cache.lookup(K))
        self.assertEqual(self.cache.bytes, 0)

    def test_reset_and_stream_loss_drop_everything_and_spoil_tickets(self):
        self.assertTrue(self.fill())
        t = self.cache.ticket(("ns", b"b"))
        self.cache.reset()
        self.assertIsNone(self.cache.lookup(K))
        self.assertFalse(self.cache.plant(t, b"v", 10.0, 0.0, 60.0))
        self.assertTrue(self.fill())
        t = self.cache.ticket(("ns", b"c"))
        self.cache.lost()
        self.assertIsNone(self.cache.lookup(K))
        self.assertIsNone(self.cache.ticket(K))
        self.cache.start(b"session-2")
        self.assertFalse(self.cache.plant(t, b"v", 10.0, 0.0, 60.0))

    def test_a_ticket_from_an_earlier_session_plants_nothing(self):
        t = self.cache.ticket(K)
        self.cache.start(b"session-2")
        self.assertFalse(self.cache.plant(t, b"v", 10.0, 0.0, 60.0))

    def test_entries_are_bounded_least_recently_used_first(self):
        for k in (b"a", b"b", b"c"):
            self.assertTrue(self.fill(("ns", k)))
        self.cache.lookup(("ns", b"a"))  # b is now the least recently used.
        self.assertTrue(self.fill(("ns", b"d")))
        self.assertEqual(len(self.cache), 3)
        self.assertIsNone(self.cache.lookup(("ns", b"b")))
        for k in (b"a", b"c", b"d"):
            self.assertIsNotNone(self.cache.lookup(("ns", k)), k)
        self.assertEqual(self.cache.evicted, 1)

    def test_bytes_are_bounded(self):
        size = 2 + 1 + 1000 + ENTRY_OVERHEAD
        cache = NearCache(NearCacheLimits(max_entries=100, max_bytes=2 * size), clock=self.clock)
        cache.start(b"s")
        for k in (b"a", b"b", b"c"):
            self.assertTrue(cache.plant(cache.ticket(("ns", k)), b"x" * 1000, 10.0, 0.0, 60.0))
        self.assertEqual((len(cache), cache.bytes), (2, 2 * size))
        self.assertIsNone(cache.lookup(("ns", b"a")))
        # A value larger than the whole budget is never kept.
        self.assertFalse(cache.plant(cache.ticket(("ns", b"big")), b"x" * 3000, 10.0, 0.0, 60.0))
        self.assertEqual(len(cache), 2)

    def test_replanting_a_key_replaces_its_bytes(self):
        self.assertTrue(self.fill(value=b"x" * 100))
        self.assertTrue(self.fill(value=b"y" * 10))
        self.assertEqual(self.cache.lookup(K).value, b"y" * 10)
        self.assertEqual(self.cache.bytes, 2 + 3 + 10 + ENTRY_OVERHEAD)

    def test_an_answer_ends_the_right_to_plant_of_reads_still_in_flight(self):
        # Two reads of the key in flight; the first answer in may be newer
        # than the other one's: that one must not plant over it.
        slow, fast = self.cache.ticket(K), self.cache.ticket(K)
        self.assertTrue(self.cache.plant(fast, b"new", 10.0, 0.0, 60.0))
        self.assertEqual(self.cache.lookup(K).value, b"new")
        self.assertFalse(self.cache.plant(slow, b"old", 10.0, 0.0, 60.0))
        # Not kept, it drops the key (which is never "old"): the next read asks.
        self.assertIsNone(self.cache.lookup(K))
        # Unless the refused answer is the value planted: then the entry stays.
        slow, fast = self.cache.ticket(K), self.cache.ticket(K)
        self.assertTrue(self.cache.plant(fast, b"same", 10.0, 0.0, 60.0))
        self.assertFalse(self.cache.plant(slow, b"same", 10.0, 0.0, 60.0))
        self.assertEqual(self.cache.lookup(K).value, b"same")

    def test_an_answer_not_kept_drops_the_entry_planted_meanwhile(self):
        self.assertTrue(self.fill(value=b"old"))
        self.assertFalse(self.fill(value=b"newer, not granted", near_for=0.0))
        self.assertIsNone(self.cache.lookup(K))
        self.assertTrue(self.fill(value=b"old"))
        self.cache.cancel(self.cache.ticket(K))  # A miss, or a failed Get.
        self.assertIsNone(self.cache.lookup(K))
        self.assertEqual(self.cache.bytes, 0)

    def test_cancelled_tickets_are_forgotten(self):
        t = self.cache.ticket(K)
        self.cache.cancel(t)
        self.assertEqual(self.cache._pending, {})

    def test_limits_must_be_positive(self):
        with self.assertRaises(ValueError):
            NearCacheLimits(max_entries=0)

    def test_backoff_doubles_to_its_cap_and_starts_over(self):
        self.assertEqual(Backoff()._cap, 2.0)
        b = Backoff(0.05, 0.3)
        self.assertEqual([b.delay() for _ in range(4)], [0.05, 0.1, 0.2, 0.3])
        b.started()
        self.assertEqual(b.delay(), 0.05)


if __name__ == "__main__":
    unittest.main()
