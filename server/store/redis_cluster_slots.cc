#include "server/store/redis_cluster_slots.h"

#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace corral {
namespace {

absl::Status BadSlots(absl::string_view problem) {
  return absl::InternalError(
      absl::StrCat("unreadable CLUSTER SLOTS reply: ", problem));
}

bool IsText(const RedisReply& r) {
  return r.type == RedisReply::Type::kString ||
         r.type == RedisReply::Type::kStatus;
}

}  // namespace

uint16_t RedisCrc16(absl::string_view data) {
  uint16_t crc = 0;
  for (const char c : data) {
    crc ^= static_cast<uint16_t>(static_cast<uint8_t>(c)) << 8;
    for (int bit = 0; bit < 8; ++bit) {
      crc = (crc & 0x8000) != 0 ? static_cast<uint16_t>((crc << 1) ^ 0x1021)
                                : static_cast<uint16_t>(crc << 1);
    }
  }
  return crc;
}

int RedisHashSlot(absl::string_view key) {
  const size_t open = key.find('{');
  if (open != absl::string_view::npos) {
    const size_t close = key.find('}', open + 1);
    if (close != absl::string_view::npos && close > open + 1) {
      key = key.substr(open + 1, close - open - 1);
    }
  }
  return RedisCrc16(key) % kRedisClusterSlots;
}

std::string RedisNodeName(const RedisAddress& address) {
  return absl::StrCat(address.host, ":", address.port);
}

absl::StatusOr<RedisSlotMap> RedisSlotMap::Parse(const RedisReply& reply,
                                                 const RedisAddress& asked) {
  if (reply.type != RedisReply::Type::kArray) return BadSlots("not an array");
  RedisSlotMap map;
  for (const RedisReply& range : reply.elements) {
    // [start, end, [host, port, id, ...], replicas...]
    if (range.type != RedisReply::Type::kArray || range.elements.size() < 3 ||
        range.elements[0].type != RedisReply::Type::kInteger ||
        range.elements[1].type != RedisReply::Type::kInteger ||
        range.elements[2].type != RedisReply::Type::kArray) {
      return BadSlots("a range is not [start, end, [host, port, ...], ...]");
    }
    const int64_t start = range.elements[0].integer;
    const int64_t end = range.elements[1].integer;
    if (start < 0 || end >= kRedisClusterSlots || start > end) {
      return BadSlots(absl::StrCat("slot range ", start, "-", end));
    }
    const RedisReply& master = range.elements[2];
    if (master.elements.size() < 2 || !IsText(master.elements[0]) ||
        master.elements[1].type != RedisReply::Type::kInteger) {
      return BadSlots(absl::StrCat("the master of slots ", start, "-", end,
                                   " has no host and port"));
    }
    RedisAddress address;
    address.host = master.elements[0].str;
    // An empty host (or "?", Redis 7's "unknown endpoint") is the node we
    // asked.
    if (address.host.empty() || address.host == "?") address.host = asked.host;
    const int64_t port = master.elements[1].integer;
    if (port < 1 || port > 65535) {
      return BadSlots(absl::StrCat("the master of slots ", start, "-", end,
                                   " has port ", port));
    }
    address.port = static_cast<int>(port);
    const int index = map.IndexOf(address);
    for (int64_t slot = start; slot <= end; ++slot) {
      map.owner_[static_cast<size_t>(slot)] = static_cast<int16_t>(index);
    }
  }
  if (map.covered() == 0) return BadSlots("no slot is served");
  return map;
}

int RedisSlotMap::IndexOf(const RedisAddress& address) {
  for (size_t i = 0; i < masters_.size(); ++i) {
    if (masters_[i].host == address.host && masters_[i].port == address.port)
      return static_cast<int>(i);
  }
  masters_.push_back(address);
  return static_cast<int>(masters_.size() - 1);
}

const RedisAddress* RedisSlotMap::Owner(int slot) const {
  if (slot < 0 || slot >= kRedisClusterSlots) return nullptr;
  const int16_t index = owner_[static_cast<size_t>(slot)];
  return index < 0 ? nullptr : &masters_[static_cast<size_t>(index)];
}

int RedisSlotMap::covered() const {
  int n = 0;
  for (const int16_t index : owner_) n += index >= 0 ? 1 : 0;
  return n;
}

void RedisSlotMap::Assign(int slot, const RedisAddress& address) {
  if (slot < 0 || slot >= kRedisClusterSlots) return;
  owner_[static_cast<size_t>(slot)] = static_cast<int16_t>(IndexOf(address));
}

std::vector<int> RedisSlotMap::SlotsOf(absl::string_view node_name) const {
  std::vector<int> slots;
  for (int slot = 0; slot < kRedisClusterSlots; ++slot) {
    const RedisAddress* owner = Owner(slot);
    if (owner != nullptr && RedisNodeName(*owner) == node_name)
      slots.push_back(slot);
  }
  return slots;
}

std::optional<RedisRedirect> ParseRedirect(const absl::Status& status) {
  const std::string code = RedisErrorCode(status);
  if (code != "MOVED" && code != "ASK") return std::nullopt;
  // "Redis error: MOVED 3999 127.0.0.1:6381"
  absl::string_view message = status.message();
  absl::ConsumePrefix(&message, "Redis error: ");
  std::vector<absl::string_view> parts =
      absl::StrSplit(message, ' ', absl::SkipEmpty());
  if (parts.size() != 3) return std::nullopt;
  RedisRedirect redirect;
  redirect.ask = code == "ASK";
  if (!absl::SimpleAtoi(parts[1], &redirect.slot) || redirect.slot < 0 ||
      redirect.slot >= kRedisClusterSlots) {
    return std::nullopt;
  }
  const size_t colon = parts[2].rfind(':');
  if (colon == absl::string_view::npos) return std::nullopt;
  redirect.to.host = std::string(parts[2].substr(0, colon));
  if (!absl::SimpleAtoi(parts[2].substr(colon + 1), &redirect.to.port) ||
      redirect.to.port < 1 || redirect.to.port > 65535) {
    return std::nullopt;
  }
  // "MOVED 3999 :6381": a node that does not know its own address.
  return redirect;
}

}  // namespace corral
