// GetOrCompute sessions and leases alone (server/core/compute_sessions.h)
// over a real flight table, breaker registry and embedded store, with time
// stepped by hand: who gets the lease, what the waiters get from a fill,
// the wait timeout's hedge (one per lease; the others wait on), revocation
// at max_compute_time, a lease handed back by a caller that half-closed, and
// a lease over the namespace's compute budget. No loop, no sleeps.
#include "server/core/compute_sessions.h"

#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "server/core/errors.h"
#include "server/store/embedded_store.h"
#include "tests/server/core/recording_observer.h"
#include "tests/support/manual_executor.h"

namespace corral {
namespace {

using ::corral::testing::ManualExecutor;
using ::corral::testing::RecordingObserver;

// What one stream was told, in order.
class RecordingSink final : public ComputeSink {
 public:
  void SendValue(ValueView value) override { values.push_back(value); }
  void SendLease(LeaseView lease) override { leases.push_back(lease); }
  void SendFilled(FilledView filled) override { fills.push_back(filled); }
  void Finish(absl::Status status) override { finished = status; }

  std::vector<ValueView> values;
  std::vector<LeaseView> leases;
  std::vector<FilledView> fills;
  std::optional<absl::Status> finished;
};

NamespaceRegistry Registry() {
  corral::v1::ServerConfig config;
  auto* defaults = config.mutable_defaults();
  defaults->mutable_max_compute_time()->set_seconds(60);
  // One compute in flight at a time, fleet-wide.
  auto* budgeted = config.add_namespaces();
  budgeted->set_name("budgeted");
  budgeted->mutable_compute_budget()->set_max_in_flight(1);
  auto registry = NamespaceRegistry::Create(config);
  EXPECT_TRUE(registry.ok()) << registry.status();
  return *std::move(registry);
}

class ComputeSessionsTest : public ::testing::Test,
                            public FlightTable::Owner,
                            public StoreListener {
 protected:
  ComputeSessionsTest()
      : executor_(clock_),
        store_(executor_, clock_),
        registry_(Registry()),
        tracker_(registry_, clock_, observer_),
        resolver_(registry_, tracker_),
        breakers_(executor_, store_, clock_, observer_),
        flights_(executor_, store_, clock_, registry_.limits(), *this),
        budget_(store_, executor_, clock_, observer_),
        sessions_(executor_, store_, clock_, observer_, breakers_, budget_,
                  flights_, resolver_, draw_) {
    store_.SetListener(this);
  }
  ~ComputeSessionsTest() override { store_.SetListener(nullptr); }

  // Starts stream `id` with a Lookup of the key; runs what it sets off.
  std::shared_ptr<RecordingSink> Open(CallId id,
                                      absl::Duration wait = absl::Seconds(30),
                                      const CacheKey* key = nullptr) {
    auto sink = std::make_shared<RecordingSink>();
    sessions_.Start(id, sink);
    LookupRequest lookup;
    lookup.key = key != nullptr ? *key : key_;
    lookup.wait_timeout = wait;
    lookup.lease_ttl = absl::Seconds(9);
    sessions_.Lookup(id, std::move(lookup), absl::InfinitePast());
    executor_.RunUntilIdle();
    return sink;
  }

  // Charges `slot` to the "budgeted" namespace (one compute in flight) as
  // another replica would; answers whether it was admitted.
  bool ChargeElsewhere(const std::string& slot) {
    BudgetLimits limits;
    limits.max_in_flight = 1;
    bool admitted = false;
    store_.ChargeBudget("budgeted", slot, limits, absl::Minutes(5),
                        [&admitted](absl::StatusOr<BudgetCharge> charge) {
                          admitted = charge.ok() && charge->admitted;
                        });
    executor_.RunUntilIdle();
    return admitted;
  }

  // FlightTable::Owner, as the Coordinator wires it.
  Waiter* FindWaiter(CallId id) override { return sessions_.Find(id); }
  bool StillHoldsLock(CallId holder, const CacheKey& key) override {
    return sessions_.StillHoldsLock(holder, key);
  }
  void OnRead(const CacheKey& key, absl::StatusOr<KeyRead> read) override {
    sessions_.OnRead(key, std::move(read));
  }
  // StoreListener: what the Coordinator does with the key's events.
  void OnKeyEvent(const KeyEvent& event) override {
    if (event.kind == KeyEvent::Kind::kFilled && event.value.has_value()) {
      sessions_.ServeAll(event.key, *event.value, Source::kPeerFill,
                         LookupStage::kAfterWait);
    }
    flights_.Wake(event.key);
  }
  void OnStoreAvailability(bool) override {}
  void OnBreakerChanged(const std::string& ns,
                        const BreakerRecord& record) override {
    breakers_.OnChanged(ns, record);
  }

  FakeClock clock_;
  ManualExecutor executor_;
  EmbeddedStore store_;
  RecordingObserver observer_;
  NamespaceRegistry registry_;
  NamespaceTracker tracker_;
  RequestResolver resolver_;
  std::function<double()> draw_;
  BreakerRegistry breakers_;
  FlightTable flights_;
  BudgetGate budget_;
  ComputeSessions sessions_;
  const CacheKey key_{"ns", "k"};
};

TEST_F(ComputeSessionsTest, OneComputesAndAFillServesTheOthers) {
  auto first = Open(1);
  auto second = Open(2);
  ASSERT_EQ(first->leases.size(), 1u);
  EXPECT_EQ(first->leases[0].mode, LeaseMode::kLocked);
  EXPECT_GT(first->leases[0].fencing_token, 0u);
  EXPECT_TRUE(second->leases.empty());
  EXPECT_EQ(observer_.waiters, 1);
  sessions_.Fill(1, FillRequest{"computed", absl::Seconds(60)});
  executor_.RunUntilIdle();
  ASSERT_EQ(first->fills.size(), 1u);
  EXPECT_TRUE(first->fills[0].stored);
  ASSERT_EQ(second->values.size(), 1u);
  EXPECT_EQ(second->values[0].bytes(), "computed");
  EXPECT_EQ(second->values[0].source, Source::kPeerFill);
  EXPECT_EQ(observer_.waiters, 0);
  EXPECT_EQ(observer_.computes["locked/filled"], 1);
  // Later callers read it.
  auto third = Open(3);
  ASSERT_EQ(third->values.size(), 1u);
  EXPECT_EQ(third->values[0].source, Source::kCache);
  EXPECT_EQ(flights_.Find(key_), nullptr);
}

TEST_F(ComputeSessionsTest, AWaitThatRunsOutHedgesWhileTheHolderComputes) {
  auto first = Open(1);
  auto second = Open(2, absl::Seconds(2));
  ASSERT_EQ(first->leases.size(), 1u);
  executor_.Advance(absl::Seconds(2));
  // The hedge: an unlocked lease beside the holder's, which keeps its own.
  ASSERT_EQ(second->leases.size(), 1u);
  EXPECT_EQ(second->leases[0].mode, LeaseMode::kUnlockedTimeout);
  EXPECT_FALSE(first->finished.has_value());
  EXPECT_EQ(observer_.duplicates, 1);
  EXPECT_EQ(observer_.lock_outcomes["timeout"], 1);
}

TEST_F(ComputeSessionsTest, TimedOutWaitersHedgeOnceAndTheRestWaitOn) {
  auto holder = Open(1);
  auto a = Open(2, absl::Seconds(2));
  auto b = Open(3, absl::Seconds(2));
  ASSERT_EQ(holder->leases.size(), 1u);
  executor_.Advance(absl::Seconds(2));
  // The holder is alive: one of them hedges (max_hedges 1), the other stays
  // queued for whichever fill lands first.
  ASSERT_EQ(a->leases.size() + b->leases.size(), 1u);
  const bool a_hedges = !a->leases.empty();
  RecordingSink& hedger = a_hedges ? *a : *b;
  RecordingSink& other = a_hedges ? *b : *a;
  EXPECT_EQ(hedger.leases[0].mode, LeaseMode::kUnlockedTimeout);
  EXPECT_FALSE(other.finished.has_value());
  EXPECT_EQ(observer_.waiters, 1);
  EXPECT_EQ(observer_.duplicates, 1);
  executor_.Advance(absl::Seconds(10));  // Well past its wait_timeout.
  EXPECT_TRUE(other.leases.empty());
  EXPECT_FALSE(other.finished.has_value());
  // The hedge's fill serves it.
  sessions_.Fill(a_hedges ? 2 : 3, FillRequest{"hedge", absl::Seconds(60)});
  executor_.RunUntilIdle();
  ASSERT_EQ(other.values.size(), 1u);
  EXPECT_EQ(other.values[0].bytes(), "hedge");
  EXPECT_EQ(observer_.waiters, 0);
}

TEST_F(ComputeSessionsTest, OverBudgetTheHeadWaitsHoldingTheLockThenGivesUp) {
  const CacheKey key{"budgeted", "k"};
  ASSERT_TRUE(ChargeElsewhere("elsewhere"));
  auto first = Open(1, absl::Seconds(2), &key);
  auto second = Open(2, absl::Seconds(10), &key);
  // The first won the lock and waits for budget; the second waits for it.
  executor_.Advance(absl::Seconds(1));
  EXPECT_TRUE(first->leases.empty());
  EXPECT_FALSE(first->finished.has_value());
  EXPECT_TRUE(second->leases.empty());
  EXPECT_EQ(observer_.lock_outcomes["acquired"], 1);
  // At its wait_timeout it is refused; the lock goes to the next caller,
  // which waits for budget in turn.
  executor_.Advance(absl::Seconds(1));
  ASSERT_TRUE(first->finished.has_value());
  EXPECT_TRUE(absl::IsResourceExhausted(*first->finished)) << *first->finished;
  EXPECT_EQ(ReasonOf(*first->finished), kReasonComputeBudget);
  EXPECT_TRUE(first->leases.empty());
  EXPECT_TRUE(second->leases.empty());
  EXPECT_EQ(observer_.lock_outcomes["acquired"], 2);
  // The slot elsewhere comes back: the next ask takes it.
  store_.ReturnBudget("budgeted", "elsewhere", [](absl::StatusOr<bool>) {});
  executor_.Advance(absl::Milliseconds(250));
  ASSERT_EQ(second->leases.size(), 1u);
  EXPECT_EQ(second->leases[0].mode, LeaseMode::kLocked);
  EXPECT_FALSE(ChargeElsewhere("other")) << "the lease holds the only slot";
  // Its fill returns the slot.
  sessions_.Fill(2, FillRequest{"v", absl::Seconds(60)});
  executor_.RunUntilIdle();
  EXPECT_TRUE(ChargeElsewhere("other"));
}

TEST_F(ComputeSessionsTest, AHungComputeIsRevokedAndTheNextWaiterTakesOver) {
  auto first = Open(1);
  auto second = Open(2, absl::Minutes(5));
  ASSERT_EQ(first->leases.size(), 1u);
  // The lease is renewed while the stream is open (lease_ttl 9 s), so the
  // lock does not lapse; at max_compute_time (60 s) it is revoked.
  executor_.Advance(absl::Seconds(59));
  EXPECT_TRUE(second->leases.empty());
  executor_.Advance(absl::Seconds(1));
  EXPECT_EQ(observer_.computes["locked/revoked"], 1);
  ASSERT_EQ(second->leases.size(), 1u);
  EXPECT_EQ(second->leases[0].mode, LeaseMode::kLocked);
  // The revoked caller's late fill is refused and stores nothing.
  sessions_.Fill(1, FillRequest{"late", absl::Seconds(60)});
  executor_.RunUntilIdle();
  ASSERT_EQ(first->fills.size(), 1u);
  EXPECT_FALSE(first->fills[0].stored);
  EXPECT_EQ(first->fills[0].reason, "lease-revoked");
  EXPECT_TRUE(second->values.empty());
}

TEST_F(ComputeSessionsTest, AHalfClosedLeaseholderHandsTheLockOn) {
  auto first = Open(1);
  auto second = Open(2);
  ASSERT_EQ(first->leases.size(), 1u);
  sessions_.HalfClosed(1);
  executor_.RunUntilIdle();
  // The second caller computes; the first waits on as a reader and gets
  // the value it could not compute.
  ASSERT_EQ(second->leases.size(), 1u);
  EXPECT_EQ(second->leases[0].mode, LeaseMode::kLocked);
  EXPECT_EQ(observer_.computes["locked/abandoned"], 1);
  sessions_.Fill(2, FillRequest{"v", absl::Seconds(60)});
  executor_.RunUntilIdle();
  ASSERT_EQ(first->values.size(), 1u);
  EXPECT_EQ(first->values[0].bytes(), "v");
}

TEST_F(ComputeSessionsTest, AFillWithoutALeaseIsAProtocolError) {
  auto first = Open(1);
  auto second = Open(2);
  sessions_.Fill(2, FillRequest{"v", absl::Seconds(60)});
  executor_.RunUntilIdle();
  ASSERT_TRUE(second->finished.has_value());
  EXPECT_TRUE(absl::IsInvalidArgument(*second->finished));
  EXPECT_EQ(observer_.waiters, 0);
}

TEST_F(ComputeSessionsTest, ShutdownReleasesTheLockAndEndsEveryone) {
  auto first = Open(1);
  auto second = Open(2);
  int released = 0;
  EXPECT_EQ(sessions_.ShutDown([&released] { ++released; }), 1);
  executor_.RunUntilIdle();
  EXPECT_EQ(released, 1);
  ASSERT_TRUE(first->finished.has_value());
  EXPECT_EQ(ReasonOf(*first->finished), kReasonShuttingDown);
  ASSERT_TRUE(second->finished.has_value());
  EXPECT_EQ(ReasonOf(*second->finished), kReasonShuttingDown);
  EXPECT_EQ(flights_.Find(key_), nullptr);
}

}  // namespace
}  // namespace corral
