// consumer TARGET KEY: against a running corrald, GetOrCompute KEY in
// namespace "plant_id" twice. The first call must compute and store the
// value, the second must be a hit that does not run its compute. Prints one
// line per step; exits 0 only if every check held.
#include <corral/client.h>

#include <cstdio>
#include <string>

namespace {

int Fail(const std::string& what) {
  std::fprintf(stderr, "consumer: FAIL %s\n", what.c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: consumer TARGET KEY\n");
    return 2;
  }
  corral::client::ClientOptions options;
  options.worker_id = "install-consumer";
  corral::client::Client client(argv[1], options);
  const std::string key = argv[2];

  int computes = 0;
  auto compute = [&computes]() -> absl::StatusOr<std::string> {
    ++computes;
    return std::string("Rosa canina");
  };
  auto first = client.GetOrCompute("plant_id", key, compute);
  if (!first.ok())
    return Fail("first GetOrCompute: " + first.status().ToString());
  if (!first->computed || !first->stored || first->value != "Rosa canina") {
    return Fail("first GetOrCompute did not compute and store the value");
  }
  std::printf("computed value=%s fencing_token=%llu\n", first->value.c_str(),
              static_cast<unsigned long long>(first->fencing_token));

  auto second = client.GetOrCompute("plant_id", key, compute);
  if (!second.ok())
    return Fail("second GetOrCompute: " + second.status().ToString());
  if (second->computed || second->value != "Rosa canina" || computes != 1) {
    return Fail("second GetOrCompute was not a hit");
  }
  std::printf("hit value=%s computes=%d\n", second->value.c_str(), computes);

  auto missing = client.GetOrCompute("", key, compute);
  if (missing.ok() ||
      corral::client::ReasonOf(missing.status()) != "invalid-argument") {
    return Fail("an empty namespace was not refused with invalid-argument");
  }
  std::printf("refused reason=invalid-argument\n");
  return 0;
}
