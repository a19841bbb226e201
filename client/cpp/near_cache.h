// The client's near cache (corral.proto, "Near cache"; docs/ARCHITECTURE.md
// 3.8): values corrald granted (Value.near_cache_for), kept in this
// process's memory until they expire, corrald invalidates them, or the
// NearCache stream ends. Internal to the library.
//
// - A background thread keeps one NearCache stream open; its session goes
//   into every Get. While there is none (starting, reconnecting) nothing is
//   kept. The stream ending empties the cache.
// - Tickets: Begin() before a Get notes the invalidations received so far;
//   End() keeps the answer only if neither the key nor everything was
//   invalidated since, and the session is the one the Get carried.
// - Bounded by entries and bytes; least recently used entries go first.
//
// Thread-safe.
#ifndef CORRAL_CLIENT_CPP_NEAR_CACHE_H_
#define CORRAL_CLIENT_CPP_NEAR_CACHE_H_

#include <grpcpp/client_context.h>

#include <cstddef>
#include <cstdint>
#include <list>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "client/cpp/types.h"
#include "corral/v1/corral.grpc.pb.h"

namespace corral::client::internal {

struct NearCacheKey {
  std::string ns;
  std::string key;
  friend bool operator==(const NearCacheKey& a, const NearCacheKey& b) {
    return a.ns == b.ns && a.key == b.key;
  }
  template <typename H>
  friend H AbslHashValue(H h, const NearCacheKey& k) {
    return H::combine(std::move(h), k.ns, k.key);
  }
};

struct NearCacheLimits {
  size_t max_entries = 10000;
  size_t max_bytes = 64 << 20;
};

class NearCache {
 public:
  // Starts the stream thread over `stub` (which must outlive this object).
  NearCache(corral::v1::Corral::Stub& stub, NearCacheLimits limits,
            std::string client_name);
  ~NearCache();  // Ends the stream and joins the thread.
  NearCache(const NearCache&) = delete;
  NearCache& operator=(const NearCache&) = delete;

  // A kept value that is still fresh (source kNearCache), or nullopt.
  std::optional<CachedValue> Find(absl::string_view ns, absl::string_view key);

  struct Ticket {
    std::string session;  // Empty: no session, nothing will be kept.
    uint64_t epoch = 0;
    uint64_t seq = 0;
    absl::Time sent_at;
  };
  // Before the Get is sent.
  Ticket Begin(absl::string_view ns, absl::string_view key);
  // After it was answered (or failed: `value` null). Keeps `value` for
  // value->near_cache_for from ticket.sent_at if the ticket allows.
  void End(const Ticket& ticket, absl::string_view ns, absl::string_view key,
           const corral::v1::Value* value);

  // Whether a session is open now.
  bool Connected() const;
  // Waits up to `timeout` for a session (tests, benchmarks).
  bool WaitConnected(absl::Duration timeout) const;
  // Fills the near_* fields.
  void AddStats(ClientStats* out) const;

 private:
  struct Entry {
    std::string value;
    absl::Time until;       // Kept until then (local clock).
    absl::Time expires_at;  // The value's TTL end (local estimate).
    absl::Time stored_at;   // age = now - stored_at.
    size_t bytes = 0;
    std::list<NearCacheKey>::iterator lru;
  };
  struct Pending {
    int reads = 0;
    uint64_t invalidated_at = 0;
  };

  bool HasSession() const ABSL_SHARED_LOCKS_REQUIRED(mu_) {
    return !session_.empty();
  }
  void Run();
  // One stream's life; returns when it ends: true when the server has no
  // near cache (UNIMPLEMENTED).
  bool RunStream();
  void OnStarted(std::string session);
  void OnInvalidate(const corral::v1::NearCacheInvalidations& keys);
  void OnReset();
  void ResetLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void EraseLocked(absl::flat_hash_map<NearCacheKey, Entry>::iterator it)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  corral::v1::Corral::Stub& stub_;
  const NearCacheLimits limits_;
  const std::string client_name_;

  mutable absl::Mutex mu_;
  absl::flat_hash_map<NearCacheKey, Entry> entries_ ABSL_GUARDED_BY(mu_);
  std::list<NearCacheKey> lru_ ABSL_GUARDED_BY(mu_);  // Front: most recent.
  size_t bytes_ ABSL_GUARDED_BY(mu_) = 0;
  std::string session_ ABSL_GUARDED_BY(mu_);
  // Bumped at every session start and end: a Get's ticket names its epoch.
  uint64_t epoch_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t seq_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t reset_at_ ABSL_GUARDED_BY(mu_) = 0;
  absl::flat_hash_map<NearCacheKey, Pending> pending_ ABSL_GUARDED_BY(mu_);
  ClientStats stats_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  grpc::ClientContext* stream_context_ ABSL_GUARDED_BY(mu_) = nullptr;

  std::thread thread_;
};

}  // namespace corral::client::internal

#endif  // CORRAL_CLIENT_CPP_NEAR_CACHE_H_
