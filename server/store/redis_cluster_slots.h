// Redis Cluster key routing, without I/O: the hash slot of a key (CRC16 of
// its hash tag) and the map from slots to master nodes that CLUSTER SLOTS
// answers. Used by RedisClusterStore; tested on its own.
#ifndef CORRAL_SERVER_STORE_REDIS_CLUSTER_SLOTS_H_
#define CORRAL_SERVER_STORE_REDIS_CLUSTER_SLOTS_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/store/redis_connection.h"
#include "server/store/redis_uri.h"

namespace corral {

inline constexpr int kRedisClusterSlots = 16384;

// CRC16-CCITT (XMODEM: polynomial 0x1021, initial value 0), the checksum
// Redis Cluster hashes keys with.
uint16_t RedisCrc16(absl::string_view data);

// The slot of `key`: CRC16 mod 16384 of its hash tag, the text between the
// first '{' and the first '}' after it, when that is not empty; else of the
// whole key.
int RedisHashSlot(absl::string_view key);

// "host:port": how nodes are named in maps and MOVED/ASK errors.
std::string RedisNodeName(const RedisAddress& address);

// Which master serves each slot. Empty entries: no master (the cluster is
// not fully covered).
class RedisSlotMap {
 public:
  RedisSlotMap() : owner_(kRedisClusterSlots, -1) {}

  // Reads a CLUSTER SLOTS reply. `asked` is the node the reply came from:
  // an empty host (or "?") in the reply means that node. Entries this
  // cannot read (a range out of 0..16383, a master without host or port)
  // are errors: the whole reply is refused, so a half-read map never
  // replaces a good one. A reply that covers no slot at all is an error
  // too (the node is not part of a cluster yet).
  static absl::StatusOr<RedisSlotMap> Parse(const RedisReply& reply,
                                            const RedisAddress& asked);

  // The master of `slot`; nullptr when no node serves it.
  const RedisAddress* Owner(int slot) const;
  // Every master named, in the order they first appear.
  const std::vector<RedisAddress>& masters() const { return masters_; }
  // How many slots have a master.
  int covered() const;
  // MOVED: `slot` is now served by `address`.
  void Assign(int slot, const RedisAddress& address);
  // The slots `address` serves.
  std::vector<int> SlotsOf(absl::string_view node_name) const;

 private:
  int IndexOf(const RedisAddress& address);

  std::vector<int16_t> owner_;  // Index into masters_, -1: none.
  std::vector<RedisAddress> masters_;
};

// A redirection error: "MOVED 3999 127.0.0.1:6381" or "ASK 3999 ...".
struct RedisRedirect {
  bool ask = false;
  int slot = 0;
  RedisAddress to;
};
// The redirection an error status carries (RedisErrorCode MOVED or ASK);
// nullopt for any other status or a message this cannot read.
std::optional<RedisRedirect> ParseRedirect(const absl::Status& status);

}  // namespace corral

#endif  // CORRAL_SERVER_STORE_REDIS_CLUSTER_SLOTS_H_
