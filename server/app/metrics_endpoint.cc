#include "server/app/metrics_endpoint.h"

#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <exception>
#include <thread>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace corral::app {
namespace {

// Opens and closes one connection to host:port (a wildcard host means this
// host); whether it connected does not matter.
void Knock(const std::string& host_port) {
  const size_t colon = host_port.rfind(':');
  if (colon == std::string::npos) return;
  std::string host = host_port.substr(0, colon);
  const std::string port = host_port.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  if (host.empty() || host == "0.0.0.0") host = "127.0.0.1";
  if (host == "::") host = "::1";
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* found = nullptr;
  if (::getaddrinfo(host.c_str(), port.c_str(), &hints, &found) != 0) return;
  const int fd = ::socket(found->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd >= 0) {
    (void)::connect(fd, found->ai_addr, found->ai_addrlen);
    ::close(fd);
  }
  ::freeaddrinfo(found);
}

}  // namespace

absl::StatusOr<std::unique_ptr<MetricsEndpoint>> MetricsEndpoint::Start(
    const std::string& address,
    std::shared_ptr<prometheus::Collectable> registry) {
  if (address == "off") {
    return std::unique_ptr<MetricsEndpoint>(
        new MetricsEndpoint(std::move(registry), nullptr, "off"));
  }
  std::unique_ptr<prometheus::Exposer> exposer;
  try {
    exposer = std::make_unique<prometheus::Exposer>(address);
  } catch (const std::exception& e) {
    return absl::UnavailableError(
        absl::StrCat("cannot serve metrics on ", address, ": ", e.what()));
  }
  exposer->RegisterCollectable(registry);
  const std::string host = address.substr(0, address.rfind(':'));
  std::string bound =
      absl::StrCat(host, ":", exposer->GetListeningPorts().at(0));
  return std::unique_ptr<MetricsEndpoint>(new MetricsEndpoint(
      std::move(registry), std::move(exposer), std::move(bound)));
}

MetricsEndpoint::MetricsEndpoint(
    std::shared_ptr<prometheus::Collectable> registry,
    std::unique_ptr<prometheus::Exposer> exposer, std::string bound)
    : registry_(std::move(registry)),
      exposer_(std::move(exposer)),
      bound_(std::move(bound)) {}

MetricsEndpoint::~MetricsEndpoint() { Stop(); }

void MetricsEndpoint::Add(
    const std::shared_ptr<prometheus::Collectable>& collectable) {
  if (exposer_) exposer_->RegisterCollectable(collectable);
}

void MetricsEndpoint::Remove(
    const std::shared_ptr<prometheus::Collectable>& collectable) {
  if (exposer_) exposer_->RemoveCollectable(collectable);
}

void MetricsEndpoint::Stop() {
  if (!exposer_) return;
  // The stop flag is set inside the exposer's destructor, so knock until it
  // returns: a knock that lands before the flag is only one more accepted
  // (and at once closed) connection.
  std::atomic<bool> stopped{false};
  std::thread knocker([this, &stopped] {
    while (!stopped.load()) {
      Knock(bound_);
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  });
  exposer_.reset();
  stopped = true;
  knocker.join();
}

}  // namespace corral::app
