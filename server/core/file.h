// Reading a whole small file (configuration, PEM, secrets) at start-up.
#ifndef CORRAL_SERVER_CORE_FILE_H_
#define CORRAL_SERVER_CORE_FILE_H_

#include <fstream>
#include <sstream>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"

namespace corral {

// The file's bytes; NOT_FOUND "cannot read <path>" when it cannot be opened.
inline absl::StatusOr<std::string> ReadWholeFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

}  // namespace corral

#endif  // CORRAL_SERVER_CORE_FILE_H_
