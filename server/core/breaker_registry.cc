#include "server/core/breaker_registry.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "server/core/log.h"

namespace corral {
namespace {
constexpr int kMaxCasAttempts = 8;
constexpr absl::Duration kTick = absl::Seconds(1);
constexpr absl::Duration kSuccessBatch = absl::Milliseconds(100);
}  // namespace

BreakerRegistry::BreakerRegistry(Executor& executor, Store& store,
                                 const Clock& clock,
                                 CoordinatorObserver& observer)
    : executor_(executor), store_(store), clock_(clock), observer_(observer) {
  executor_.Post(
      [this] { tick_timer_ = executor_.RunAfter(kTick, [this] { Tick(); }); });
}

BreakerRegistry::~BreakerRegistry() {
  if (tick_timer_ != 0) executor_.Cancel(tick_timer_);
  for (auto& [ns, e] : entries_) {
    if (e.flush_timer != 0) executor_.Cancel(e.flush_timer);
  }
}

void BreakerRegistry::Tick() {
  for (const auto& [ns, e] : entries_) {
    observer_.OnBreakerState(ns, e.snapshot.state, e.snapshot.since);
  }
  tick_timer_ = executor_.RunAfter(kTick, [this] { Tick(); });
}

void BreakerRegistry::WhenLoaded(const std::string& ns,
                                 absl::AnyInvocable<void()> then) {
  Entry& e = entries_[ns];
  if (e.loaded) return then();
  e.after_load.push_back(std::move(then));
  Load(ns);
}

void BreakerRegistry::Load(const std::string& ns) {
  Entry& e = entries_[ns];
  if (e.loading) return;
  e.loading = true;
  store_.LoadBreaker(ns, [this, ns](absl::StatusOr<BreakerRecord> record) {
    Entry& e = entries_[ns];
    e.loading = false;
    if (record.ok()) {
      Adopt(ns, *record);
    } else {
      // Unreachable store: work on what we have (closed, for a new one).
      CORRAL_LOG(LogLevel::kWarning, "breaker_load_failed", "ns=", ns,
                 " error=\"", record.status().message(), "\"");
    }
    e.loaded = true;
    // Known from now on (a namespace without a record is closed): its
    // gauges appear at first use, not at its first write.
    observer_.OnBreakerState(ns, e.snapshot.state, e.snapshot.since);
    std::vector<absl::AnyInvocable<void()>> waiting;
    waiting.swap(e.after_load);
    for (auto& fn : waiting) fn();
  });
}

void BreakerRegistry::Adopt(const std::string& ns,
                            const BreakerRecord& record) {
  Entry& e = entries_[ns];
  if (record.version <= e.version || record.state.empty()) return;
  auto snapshot = BreakerSnapshot::Decode(record.state);
  if (!snapshot.ok()) {
    CORRAL_LOG(LogLevel::kError, "breaker_state_unreadable", "ns=", ns,
               " error=\"", snapshot.status().message(), "\"");
    return;
  }
  e.version = record.version;
  e.snapshot = *std::move(snapshot);
  observer_.OnBreakerState(ns, e.snapshot.state, e.snapshot.since);
}

void BreakerRegistry::OnChanged(const std::string& ns,
                                const BreakerRecord& record) {
  // Another replica's namespace that this one does not use: nothing to
  // keep (its first use here loads the record).
  if (!entries_.contains(ns)) return;
  Adopt(ns, record);
}

bool BreakerRegistry::Busy(const std::string& ns) const {
  auto it = entries_.find(ns);
  if (it == entries_.end()) return false;
  const Entry& e = it->second;
  return e.loading || !e.after_load.empty() || e.pending_successes > 0 ||
         e.flush_timer != 0;
}

void BreakerRegistry::Forget(const std::string& ns) { entries_.erase(ns); }

void BreakerRegistry::OnStoreAvailability(bool up) {
  if (!up) return;
  // Changes made while we could not hear them: read every namespace again.
  for (auto& [ns, e] : entries_) Load(ns);
}

std::optional<BreakerVerdict> BreakerRegistry::Peek(
    const NamespaceSettings& ns) const {
  auto it = entries_.find(ns.name);
  if (it == entries_.end() || !it->second.loaded) return std::nullopt;
  BreakerDecision d =
      corral::Admit(it->second.snapshot, ns.breaker, clock_.Now());
  switch (d.kind) {
    case BreakerDecision::kAllow:
      return BreakerVerdict{true, false, absl::ZeroDuration()};
    case BreakerDecision::kReject:
      return BreakerVerdict{false, false, d.retry_after};
    case BreakerDecision::kNeedProbe:
      return std::nullopt;
  }
  return std::nullopt;
}

void BreakerRegistry::Admit(const NamespaceSettings& ns,
                            absl::AnyInvocable<void(BreakerVerdict)> done) {
  WhenLoaded(ns.name, [this, ns, done = std::move(done)]() mutable {
    if (auto verdict = Peek(ns)) return done(*verdict);
    // A probe: take a permit fleet-wide.
    Mutate(
        ns,
        [this, settings = ns.breaker](BreakerSnapshot& s) {
          return TakeProbe(s, settings, clock_.Now());
        },
        [this, ns, done = std::move(done)](bool taken) mutable {
          if (taken)
            return done(BreakerVerdict{true, true, absl::ZeroDuration()});
          auto again = Peek(ns);
          done(BreakerVerdict{
              false, false,
              again.has_value() ? again->retry_after : absl::Seconds(1)});
        });
  });
}

void BreakerRegistry::Record(const NamespaceSettings& ns,
                             ComputeOutcome outcome) {
  WhenLoaded(ns.name, [this, ns, outcome] {
    Entry& e = entries_[ns.name];
    if (outcome == ComputeOutcome::kSuccess &&
        e.snapshot.state == BreakerState::kClosed) {
      ++e.pending_successes;
      if (!e.pending_for.has_value()) e.pending_for = ns;
      if (e.flush_timer == 0) {
        e.flush_timer = executor_.RunAfter(kSuccessBatch, [this, ns] {
          entries_[ns.name].flush_timer = 0;
          Flush(ns, std::nullopt);
        });
      }
      return;
    }
    Flush(ns, outcome);
  });
}

int BreakerRegistry::FlushPending(const std::function<void()>& written) {
  int started = 0;
  std::vector<NamespaceSettings> due;
  for (auto& [name, e] : entries_) {
    if (e.pending_successes > 0 && e.pending_for.has_value())
      due.push_back(*e.pending_for);
  }
  for (const NamespaceSettings& ns : due) {
    ++started;
    Flush(ns, std::nullopt, written);
  }
  return started;
}

void BreakerRegistry::Flush(const NamespaceSettings& ns,
                            std::optional<ComputeOutcome> outcome,
                            std::function<void()> written) {
  Entry& e = entries_[ns.name];
  const uint64_t successes = std::exchange(e.pending_successes, 0);
  e.pending_for.reset();
  if (e.flush_timer != 0) executor_.Cancel(std::exchange(e.flush_timer, 0));
  if (successes == 0 && !outcome.has_value()) {
    if (written) written();
    return;
  }
  Mutate(
      ns,
      [this, settings = ns.breaker, successes, outcome](BreakerSnapshot& s) {
        const absl::Time now = clock_.Now();
        // In order: the successes came before the outcome that flushes them.
        for (uint64_t i = 0; i < successes; ++i) {
          RecordOutcome(s, settings, ComputeOutcome::kSuccess, now);
        }
        if (outcome.has_value()) RecordOutcome(s, settings, *outcome, now);
        return true;
      },
      [written = std::move(written)](bool) {
        if (written) written();
      });
}

void BreakerRegistry::Describe(const NamespaceSettings& ns,
                               absl::AnyInvocable<void(BreakerView)> done) {
  WhenLoaded(ns.name, [this, ns, done = std::move(done)]() mutable {
    const Entry& e = entries_[ns.name];
    const absl::Time now = clock_.Now();
    BreakerView view;
    view.state = e.snapshot.state;
    view.since = e.snapshot.since;
    if (e.snapshot.state == BreakerState::kOpen) {
      view.retry_after =
          std::max(absl::ZeroDuration(),
                   e.snapshot.since + ns.breaker.open_duration - now);
    }
    BreakerSnapshot::Totals t = e.snapshot.InWindow(ns.breaker, now);
    view.recent_failures = t.failures;
    view.recent_successes = t.successes + e.pending_successes;
    done(view);
  });
}

void BreakerRegistry::Mutate(const NamespaceSettings& ns,
                             std::function<bool(BreakerSnapshot&)> change,
                             absl::AnyInvocable<void(bool)> done, int attempt) {
  Entry& e = entries_[ns.name];
  BreakerSnapshot next = e.snapshot;
  const BreakerState before = next.state;
  if (!change(next)) return done(false);
  store_.StoreBreaker(
      ns.name, e.version, next.Encode(),
      [this, ns, change = std::move(change), done = std::move(done), attempt,
       before, next](absl::StatusOr<BreakerCas> cas) mutable {
        Entry& e = entries_[ns.name];
        if (!cas.ok()) {
          // No store: the breaker still protects the upstream, from this
          // replica's own view.
          BreakerSnapshot local = e.snapshot;
          const BreakerState from = local.state;
          if (!change(local)) return done(false);
          e.snapshot = local;
          if (from != local.state) {
            observer_.OnBreakerTransition(ns.name, from, local.state);
            observer_.OnBreakerState(ns.name, local.state, local.since);
            CORRAL_LOG(LogLevel::kWarning, "breaker_transition", "ns=", ns.name,
                       " from=", BreakerStateName(from),
                       " to=", BreakerStateName(local.state),
                       " scope=local (store unavailable)");
          }
          return done(true);
        }
        Adopt(ns.name, cas->current);
        if (cas->stored) {
          if (before != next.state) {
            observer_.OnBreakerTransition(ns.name, before, next.state);
            CORRAL_LOG(LogLevel::kWarning, "breaker_transition", "ns=", ns.name,
                       " from=", BreakerStateName(before),
                       " to=", BreakerStateName(next.state),
                       " version=", cas->current.version);
          }
          return done(true);
        }
        if (attempt + 1 >= kMaxCasAttempts) {
          CORRAL_LOG(LogLevel::kWarning, "breaker_write_contended",
                     "ns=", ns.name);
          return done(false);
        }
        Mutate(ns, std::move(change), std::move(done), attempt + 1);
      });
}

}  // namespace corral
