// A minimal HTTP/1.1 POST over a plain socket, for the example worker's
// fake upstream (http://HOST:PORT only: no TLS, no redirects, no chunked
// bodies). The example needs nothing more, and so needs no HTTP library.
#ifndef CORRAL_CLIENT_EXAMPLES_HTTP_POST_H_
#define CORRAL_CLIENT_EXAMPLES_HTTP_POST_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace corral::examples {

struct HttpResponse {
  int status = 0;
  std::string body;
};

// POSTs `body` to `url` ("http://host:port/path") and returns the status
// and body. Transport failures (bad URL, refused, timeout, malformed
// answer) are errors; an HTTP error status is a response, not an error.
absl::StatusOr<HttpResponse> HttpPost(absl::string_view url,
                                      absl::string_view body,
                                      absl::Duration timeout);

}  // namespace corral::examples

#endif  // CORRAL_CLIENT_EXAMPLES_HTTP_POST_H_
