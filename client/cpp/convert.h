// Proto <-> client types. Internal to the client library.
#ifndef CORRAL_CLIENT_CPP_CONVERT_H_
#define CORRAL_CLIENT_CPP_CONVERT_H_

#include <google/protobuf/duration.pb.h>
#include <google/protobuf/timestamp.pb.h>

#include "absl/time/time.h"
#include "client/cpp/types.h"
#include "corral/v1/corral.pb.h"

namespace corral::client::internal {

google::protobuf::Duration DurationToProto(absl::Duration d);
absl::Duration DurationFromProto(const google::protobuf::Duration& d);
absl::Time TimeFromProto(const google::protobuf::Timestamp& t);

CachedValue ValueFromProto(const corral::v1::Value& v);
Source SourceFromProto(corral::v1::Source source);
LeaseMode LeaseModeFromProto(corral::v1::LeaseMode mode);
corral::v1::Outcome OutcomeToProto(Outcome outcome);
BreakerState BreakerStateFromProto(corral::v1::BreakerState state);

}  // namespace corral::client::internal

#endif  // CORRAL_CLIENT_CPP_CONVERT_H_
