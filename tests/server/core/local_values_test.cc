// Local coordination's memory alone (server/core/local_values.h).
#include "server/core/local_values.h"

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace corral {
namespace {

const absl::Time kNow = absl::FromUnixSeconds(1'700'000'000);

StoredValue Value(std::string bytes, absl::Duration ttl) {
  return StoredValue{std::move(bytes), kNow, kNow + ttl, absl::Seconds(1)};
}

TEST(LocalValuesTest, AFreshValueIsFoundUntilItExpires) {
  LocalValues values;
  const CacheKey key{"ns", "k"};
  EXPECT_FALSE(values.FindFresh(key, kNow).has_value());
  values.Remember(key, Value("v", absl::Seconds(10)));
  std::optional<StoredValue> found = values.FindFresh(key, kNow);
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->value, "v");
  EXPECT_TRUE(values.FindFresh(key, kNow + absl::Seconds(9)).has_value());
  EXPECT_FALSE(values.FindFresh(key, kNow + absl::Seconds(10)).has_value());
  EXPECT_FALSE(values.FindFresh(CacheKey{"other", "k"}, kNow).has_value());
}

TEST(LocalValuesTest, ALaterComputeReplacesTheValue) {
  LocalValues values;
  const CacheKey key{"ns", "k"};
  values.Remember(key, Value("old", absl::Seconds(10)));
  values.Remember(key, Value("new", absl::Seconds(10)));
  EXPECT_EQ(values.FindFresh(key, kNow)->value, "new");
  EXPECT_EQ(values.size(), 1u);
}

TEST(LocalValuesTest, TheStoreComingBackDropsEverything) {
  LocalValues values;
  values.Remember(CacheKey{"ns", "a"}, Value("a", absl::Seconds(10)));
  values.Clear();
  EXPECT_EQ(values.size(), 0u);
  EXPECT_FALSE(values.FindFresh(CacheKey{"ns", "a"}, kNow).has_value());
}

TEST(LocalValuesTest, ItIsBoundedAndStartsOverWhenFull) {
  LocalValues values;
  for (size_t i = 0; i < LocalValues::kMaxKeys; ++i) {
    values.Remember(CacheKey{"ns", absl::StrCat(i)},
                    Value("v", absl::Seconds(10)));
  }
  EXPECT_EQ(values.size(), LocalValues::kMaxKeys);
  values.Remember(CacheKey{"ns", "one more"}, Value("v", absl::Seconds(10)));
  EXPECT_EQ(values.size(), 1u);
  EXPECT_TRUE(values.FindFresh(CacheKey{"ns", "one more"}, kNow).has_value());
}

}  // namespace
}  // namespace corral
