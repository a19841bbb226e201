// Fuzzes configuration parsing and validation (namespaces, limits,
// credentials): any file must load or be refused with a message, never crash.
#include <cstddef>
#include <cstdint>
#include <string>

#include "google/protobuf/io/tokenizer.h"
#include "google/protobuf/text_format.h"
#include "google/protobuf/util/json_util.h"
#include "server/core/namespace_config.h"
#include "server/rpc/auth.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);
  corral::v1::ServerConfig config;
  google::protobuf::TextFormat::Parser parser;
  parser.AllowPartialMessage(false);
  class Quiet : public google::protobuf::io::ErrorCollector {
    void AddError(int, int, const std::string&) override {}
  } quiet;
  parser.RecordErrorsTo(&quiet);
  if (!parser.ParseFromString(input, &config)) {
    config.Clear();
    if (!google::protobuf::util::JsonStringToMessage(input, &config).ok())
      return 0;
  }
  auto registry = corral::NamespaceRegistry::Create(config);
  if (registry.ok()) {
    for (const auto& ns : config.namespaces()) (void)registry->Find(ns.name());
    (void)registry->Find("unlisted");
  }
  auto authorizer = corral::rpc::Authorizer::Create(config.credentials());
  if (authorizer.ok()) {
    for (const auto& c : config.credentials()) {
      for (const auto& ns : c.namespaces()) {
        (void)authorizer->Decide("Bearer token", ns, corral::rpc::Right::kRead);
      }
    }
  }
  return 0;
}
