// plant_worker: the plant-identification worker of the Python example
// (client/python/examples/plant_worker.py), in C++ on corral::client::Client.
//
// For each image it takes the SHA-256 (the cache key, the same in every
// language) and calls GetOrCompute in namespace "plant_id": on a miss exactly
// one worker fleet-wide calls the slow upstream (POST /identify); the rest,
// in any language, wait and get that answer. An open breaker is answered
// "503, retry after N s" without calling the upstream. --namespace picks
// another namespace (one per upstream).
//
//   plant_worker --target=127.0.0.1:50051 --upstream=http://127.0.0.1:8000
//       --threads=8 --repeat=2 rose.jpg tulip.jpg
//
// Output, one tab-separated line per lookup (the Python worker's format):
//   IMAGE_SHA256  SOURCE  VALUE            SOURCE: computed, peer_fill,
//   cache... IMAGE_SHA256  error   REASON  DETAILS  REASON: breaker-open,
//   compute-budget, ...
// Exit status: 0 when every lookup got a value, 1 otherwise, 2 on bad usage.
#include <openssl/evp.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <mutex>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "client/cpp/corral_client.h"
#include "client/cpp/errors.h"
#include "client/examples/http_post.h"

ABSL_FLAG(std::string, target, "127.0.0.1:50051", "corrald address.");
ABSL_FLAG(std::string, namespace, "plant_id",
          "corral namespace (one per upstream).");
ABSL_FLAG(std::string, upstream, "", "Fake upstream URL, http://HOST:PORT.");
ABSL_FLAG(int, threads, 8, "Concurrent lookups.");
ABSL_FLAG(int, repeat, 1, "Lookups per image (jobs are shuffled).");
ABSL_FLAG(double, start_at, 0,
          "UNIX time to start at (lines up racing workers).");
ABSL_FLAG(std::string, worker_id, "", "Sent to corrald for its logs.");

namespace {

// The seed's numbers: wait up to 15 s for another worker's compute.
constexpr absl::Duration kWaitTimeout = absl::Seconds(15);
constexpr absl::Duration kUpstreamTimeout = absl::Seconds(30);

// The cache key of an image: SHA-256, lower-case hex.
std::string ImageKey(const std::string& image) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(image.data(), image.size(), digest, &len, EVP_sha256(), nullptr);
  std::string hex;
  for (unsigned int i = 0; i < len; ++i) {
    absl::StrAppend(&hex, absl::Hex(digest[i], absl::kZeroPad2));
  }
  return hex;
}

// The slow, paid call. A non-200 answer is an upstream failure.
absl::StatusOr<std::string> Identify(const std::string& upstream,
                                     const std::string& image) {
  absl::StatusOr<corral::examples::HttpResponse> r = corral::examples::HttpPost(
      absl::StrCat(upstream, "/identify"), image, kUpstreamTimeout);
  if (!r.ok()) return r.status();
  if (r->status != 200) {
    return absl::UnavailableError(absl::StrCat("upstream answered ", r->status,
                                               ": ", r->body.substr(0, 200)));
  }
  return std::move(r->body);
}

// Writes whole result lines from many threads.
class Printer {
 public:
  void Value(const std::string& key, absl::string_view source,
             const std::string& value) {
    Write(absl::StrCat(key, "\t", source, "\t", value, "\n"));
  }
  void Error(const std::string& key, const absl::Status& status,
             bool compute_failed) {
    std::string reason = corral::client::ReasonOf(status);
    std::string details = corral::client::DescribeStatus(status);
    if (reason == corral::client::kReasonBreakerOpen) {
      const absl::Duration retry =
          corral::client::RetryAfterOf(status).value_or(absl::ZeroDuration());
      details = absl::StrCat("503: plant identification paused, retry after ",
                             absl::FormatDuration(retry));
    } else if (reason == corral::client::kReasonComputeBudget) {
      // The upstream's budget (its quota, shared by the fleet) is spent for
      // now: answer 429 with the server's hint instead of retrying here.
      const absl::Duration retry =
          corral::client::RetryAfterOf(status).value_or(absl::ZeroDuration());
      details =
          absl::StrCat("429: plant identification quota busy, retry after ",
                       absl::FormatDuration(retry));
    } else if (compute_failed) {
      reason = "upstream-failed";
    } else if (reason.empty()) {
      reason = absl::AsciiStrToLower(absl::StatusCodeToString(status.code()));
    }
    failures_.fetch_add(1);
    Write(absl::StrCat(key, "\terror\t", reason, "\t", details, "\n"));
  }
  int failures() const { return failures_.load(); }

 private:
  void Write(const std::string& line) {
    std::lock_guard<std::mutex> lock(mu_);
    std::cout << line << std::flush;
  }
  std::mutex mu_;
  std::atomic<int> failures_{0};
};

bool ReadFile(const std::string& path, std::string* out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::ostringstream data;
  data << in.rdbuf();
  *out = data.str();
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "plant_worker --target=HOST:PORT --upstream=http://HOST:PORT "
      "[--threads=8] [--repeat=1] [--start_at=UNIX] IMAGE...");
  std::vector<char*> rest = absl::ParseCommandLine(argc, argv);
  const std::string upstream = absl::GetFlag(FLAGS_upstream);
  const int threads = absl::GetFlag(FLAGS_threads);
  const int repeat = absl::GetFlag(FLAGS_repeat);
  if (upstream.empty() || rest.size() < 2 || threads < 1 || repeat < 1) {
    std::cerr << "plant_worker: need --upstream, at least one image, and "
                 "--threads/--repeat >= 1\n";
    return 2;
  }

  std::vector<std::string> jobs;
  for (size_t i = 1; i < rest.size(); ++i) {
    std::string image;
    if (!ReadFile(rest[i], &image)) {
      std::cerr << "plant_worker: cannot read " << rest[i] << "\n";
      return 2;
    }
    for (int r = 0; r < repeat; ++r) jobs.push_back(image);
  }
  std::shuffle(jobs.begin(), jobs.end(), std::mt19937(std::random_device{}()));

  corral::client::ClientOptions options;
  options.default_timeout = absl::Seconds(60);
  options.worker_id = absl::GetFlag(FLAGS_worker_id);
  if (options.worker_id.empty())
    options.worker_id = absl::StrCat("cc-", ::getpid());
  corral::client::Client client(absl::GetFlag(FLAGS_target), options);

  if (const double start_at = absl::GetFlag(FLAGS_start_at); start_at > 0) {
    absl::SleepFor(absl::FromUnixNanos(static_cast<int64_t>(start_at * 1e9)) -
                   absl::Now());
  }

  const std::string ns = absl::GetFlag(FLAGS_namespace);
  Printer printer;
  std::atomic<size_t> next{0};
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&] {
      for (size_t i = next++; i < jobs.size(); i = next++) {
        const std::string& image = jobs[i];
        const std::string key = ImageKey(image);
        bool compute_failed = false;
        corral::client::GetOrComputeOptions call;
        call.wait_timeout = kWaitTimeout;
        absl::StatusOr<corral::client::GetOrComputeResult> result =
            client.GetOrCompute(
                ns, key,
                [&]() -> absl::StatusOr<std::string> {
                  absl::StatusOr<std::string> v = Identify(upstream, image);
                  compute_failed = !v.ok();
                  return v;
                },
                call);
        if (result.ok()) {
          printer.Value(key, corral::client::SourceName(result->source),
                        result->value);
        } else {
          printer.Error(key, result.status(), compute_failed);
        }
      }
    });
  }
  for (std::thread& t : pool) t.join();
  return printer.failures() == 0 ? 0 : 1;
}
