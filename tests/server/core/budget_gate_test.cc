// BudgetGate on the embedded store: charges, waits for budget by asking
// again, gives up at the deadline, and reports to the observer.
#include "server/core/budget_gate.h"

#include <atomic>
#include <future>
#include <memory>
#include <optional>
#include <string>

#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"
#include "server/core/event_loop.h"
#include "server/store/embedded_store.h"
#include "tests/server/core/null_observer.h"
#include "tests/support/on_loop.h"

namespace corral {
namespace {

class BudgetObserver final : public ::corral::testing::NullObserver {
 public:
  void OnBudgetCharge(absl::string_view, uint32_t in_flight,
                      absl::string_view over_limit, bool enforced) override {
    last_in_flight = in_flight;
    if (!over_limit.empty()) ++(enforced ? waits : shadow_over);
  }
  void OnBudgetReturned(absl::string_view) override { ++returns; }
  std::atomic<uint32_t> last_in_flight{0};
  std::atomic<int> waits{0};
  std::atomic<int> shadow_over{0};
  std::atomic<int> returns{0};
};

class BudgetGateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    loop_.Start();
    OnLoop([this] {
      store_ = std::make_unique<EmbeddedStore>(loop_, clock_);
      gate_ = std::make_unique<BudgetGate>(*store_, loop_, clock_, observer_);
    });
  }
  void TearDown() override {
    OnLoop([this] {
      gate_.reset();
      store_.reset();
    });
    loop_.Stop();
  }
  void OnLoop(absl::AnyInvocable<void()> fn) {
    ::corral::testing::RunOnLoop(loop_, std::move(fn));
  }

  static NamespaceSettings InFlight(uint32_t n, bool enforce = true) {
    NamespaceSettings ns;
    ns.name = "ns";
    ns.compute_budget.max_in_flight = n;
    ns.compute_budget.enforce = enforce;
    return ns;
  }

  // Charges on the loop; waits (up to 10 s) for the verdict.
  std::optional<BudgetVerdict> Charge(
      const NamespaceSettings& ns, const std::string& slot, absl::Duration wait,
      std::shared_ptr<std::atomic<bool>> wanted =
          std::make_shared<std::atomic<bool>>(true)) {
    auto verdict = std::make_shared<std::promise<BudgetVerdict>>();
    auto answer = verdict->get_future();
    OnLoop([&, verdict] {
      gate_->Charge(
          ns, slot, absl::Seconds(30), clock_.Now() + wait,
          [wanted] { return wanted->load(); },
          [verdict](BudgetVerdict v) { verdict->set_value(std::move(v)); });
    });
    if (answer.wait_for(std::chrono::seconds(10)) !=
        std::future_status::ready) {
      return std::nullopt;
    }
    return answer.get();
  }

  RealClock clock_;  // The gate's retries run on the loop's real timers.
  EventLoop loop_;
  BudgetObserver observer_;
  std::unique_ptr<EmbeddedStore> store_;
  std::unique_ptr<BudgetGate> gate_;
};

TEST_F(BudgetGateTest, NoBudgetAdmitsWithoutASlot) {
  NamespaceSettings ns;
  ns.name = "ns";
  auto v = Charge(ns, "a", absl::ZeroDuration());
  ASSERT_TRUE(v.has_value());
  EXPECT_TRUE(v->admitted);
  EXPECT_EQ(v->slot, "");
}

TEST_F(BudgetGateTest, ARefusedChargeWaitsForASlotToComeBack) {
  auto first = Charge(InFlight(1), "a", absl::ZeroDuration());
  ASSERT_TRUE(first.has_value());
  ASSERT_TRUE(first->admitted);
  EXPECT_EQ(first->slot, "a");
  // The second waits; the first's slot comes back meanwhile.
  auto verdict = std::make_shared<std::promise<BudgetVerdict>>();
  auto answer = verdict->get_future();
  OnLoop([&, verdict] {
    gate_->Charge(
        InFlight(1), "b", absl::Seconds(30), clock_.Now() + absl::Seconds(30),
        [] { return true; },
        [verdict](BudgetVerdict v) { verdict->set_value(std::move(v)); });
  });
  OnLoop([&] {
    std::string slot = "a";
    gate_->Return("ns", &slot);
    EXPECT_EQ(slot, "");
  });
  ASSERT_EQ(answer.wait_for(std::chrono::seconds(10)),
            std::future_status::ready);
  BudgetVerdict second = answer.get();
  EXPECT_TRUE(second.admitted);
  EXPECT_EQ(second.slot, "b");
  EXPECT_EQ(observer_.returns.load(), 1);
}

TEST_F(BudgetGateTest, ADeadlineAlreadyPastIsOneTry) {
  ASSERT_TRUE(Charge(InFlight(1), "a", absl::ZeroDuration())->admitted);
  auto refused = Charge(InFlight(1), "b", absl::ZeroDuration());
  ASSERT_TRUE(refused.has_value());
  EXPECT_FALSE(refused->admitted);
  EXPECT_EQ(refused->limit, "in_flight");
  EXPECT_EQ(refused->slot, "");
  EXPECT_GT(refused->retry_after, absl::ZeroDuration());
  EXPECT_EQ(observer_.waits.load(), 1);
  EXPECT_EQ(observer_.last_in_flight.load(), 1u);
}

TEST_F(BudgetGateTest, AWaitTheCallerGaveUpOnIsWithdrawnAndHoldsNoSlot) {
  ASSERT_TRUE(Charge(InFlight(1), "a", absl::ZeroDuration())->admitted);
  auto wanted = std::make_shared<std::atomic<bool>>(true);
  auto verdict = std::make_shared<std::promise<BudgetVerdict>>();
  auto answer = verdict->get_future();
  OnLoop([&] {
    gate_->Charge(
        InFlight(1), "b", absl::Seconds(30), clock_.Now() + absl::Seconds(30),
        [wanted] { return wanted->load(); },
        [verdict](BudgetVerdict v) { verdict->set_value(std::move(v)); });
  });
  wanted->store(false);
  OnLoop([&] {
    std::string slot = "a";
    gate_->Return("ns", &slot);
  });
  // A third charge fits: "b" took nothing.
  auto third = Charge(InFlight(1), "c", absl::Seconds(5));
  ASSERT_TRUE(third.has_value());
  EXPECT_TRUE(third->admitted);
  ASSERT_EQ(answer.wait_for(std::chrono::seconds(10)),
            std::future_status::ready);
  BudgetVerdict b = answer.get();
  EXPECT_TRUE(b.withdrawn);
  EXPECT_FALSE(b.admitted);
  EXPECT_EQ(b.slot, "");
}

TEST_F(BudgetGateTest, ShadowModeAdmitsAndCountsWhatItWouldRefuse) {
  ASSERT_TRUE(Charge(InFlight(1, false), "a", absl::ZeroDuration())->admitted);
  auto over = Charge(InFlight(1, false), "b", absl::ZeroDuration());
  ASSERT_TRUE(over.has_value());
  EXPECT_TRUE(over->admitted);
  EXPECT_EQ(over->slot, "b");
  EXPECT_EQ(observer_.shadow_over.load(), 1);
  EXPECT_EQ(observer_.waits.load(), 0);
  EXPECT_EQ(observer_.last_in_flight.load(), 2u);
}

}  // namespace
}  // namespace corral
