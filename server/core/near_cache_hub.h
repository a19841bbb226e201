// The server's half of the clients' near cache (corral.proto, "Near
// cache"; docs/ARCHITECTURE.md 3.8): which client session holds which key,
// and the fan-out of invalidations to them.
//
// A session is one client's NearCache stream. A Get that names it
// registers its key *before* the read, so that every change of the key
// after the read reaches the session: the hub hears of changes from the
// read cache (ReadCacheOptions::on_invalidate, which the store calls for
// its own writes, for Redis's tracking messages, FLUSHALL and every loss
// of coherence) and pushes them to the sessions that registered the key,
// forgetting those registrations (one-shot, like Redis's default
// tracking). When a change may have been missed, every session is reset.
//
// Bounded: past kMaxKeysPerSession registrations a session is reset (its
// client empties its near cache) instead of growing; a sink decides what
// to do with a slow stream (NearCacheSink).
//
// Threading: every method is thread-safe. Sink calls are made with the
// hub's mutex held: they must not block and must not call the hub.
#ifndef CORRAL_SERVER_CORE_NEAR_CACHE_HUB_H_
#define CORRAL_SERVER_CORE_NEAR_CACHE_HUB_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/container/inlined_vector.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/core/cache_key.h"

namespace corral {

// One session's stream, implemented by the gRPC layer. Called with the
// hub's mutex held: queue the message and return.
class NearCacheSink {
 public:
  virtual ~NearCacheSink() = default;
  // These keys changed, or may have.
  virtual void Invalidate(std::vector<CacheKey> keys) = 0;
  // Everything may have changed; `reason` is for logs.
  virtual void Reset(absl::string_view reason) = 0;
  // The server is shutting down: end the stream (the session is gone).
  virtual void End() = 0;
};

class NearCacheHub {
 public:
  static constexpr size_t kMaxKeysPerSession = 100000;

  NearCacheHub() = default;
  NearCacheHub(const NearCacheHub&) = delete;
  NearCacheHub& operator=(const NearCacheHub&) = delete;

  // A new session pushing to `sink`; the answer is its unguessable id (16
  // random bytes).
  std::string Open(std::shared_ptr<NearCacheSink> sink);
  // The session is over; its sink is not called afterwards.
  void Close(absl::string_view session);

  // Registers `key` for `session`: its next change is pushed there. False
  // (nothing registered) when the session is unknown.
  bool Register(absl::string_view session, const CacheKey& key);

  // Ends every session (server shutdown: the streams would otherwise hold
  // the drain up to its timeout). Sessions opened later are ended at once.
  void Shutdown();

  // The read cache's listener: `key` changed (null: every key may have).
  void OnInvalidate(const CacheKey* key);

  size_t sessions() const;
  size_t registrations() const;
  uint64_t keys_pushed() const { return keys_pushed_.load(); }
  uint64_t resets() const { return resets_.load(); }

 private:
  struct Session {
    std::shared_ptr<NearCacheSink> sink;
    absl::flat_hash_set<CacheKey> keys;
  };
  void ForgetKeysLocked(const std::string& id, Session& session)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ResetLocked(const std::string& id, Session& session,
                   absl::string_view reason) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, Session> sessions_ ABSL_GUARDED_BY(mu_);
  // Which sessions registered a key (ids; a closed session leaves none).
  absl::flat_hash_map<CacheKey, absl::InlinedVector<std::string, 2>> holders_
      ABSL_GUARDED_BY(mu_);
  size_t registrations_ ABSL_GUARDED_BY(mu_) = 0;
  bool shut_down_ ABSL_GUARDED_BY(mu_) = false;
  std::atomic<uint64_t> keys_pushed_{0};
  std::atomic<uint64_t> resets_{0};
};

// Where XFetch's chance of an early refresh on a hit reaches 1/1000: from
// there on, hits must reach corrald so that one caller gets the refresh.
// A value with no compute time (a Set) or beta 0 has no window.
absl::Time EarlyRefreshWindowStart(absl::Time expires_at,
                                   absl::Duration compute_time, double beta);

// How long a client may keep a value it asked for at `now` (zero: not at
// all): until its expiry or its early-refresh window, whichever is first.
absl::Duration NearCacheFor(absl::Time now, absl::Time expires_at,
                            absl::Duration compute_time, double beta);

}  // namespace corral

#endif  // CORRAL_SERVER_CORE_NEAR_CACHE_HUB_H_
