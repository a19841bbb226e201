#include "tests/support/test_pki.h"

#include <filesystem>
#include <fstream>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "tests/support/corrald_process.h"

namespace corral::testing {
namespace {

absl::Status Openssl(std::vector<std::string> args) {
  args.insert(args.begin(), "/usr/bin/openssl");
  absl::StatusOr<CommandResult> r = RunCommand(args, "", absl::Seconds(60));
  if (!r.ok()) return r.status();
  if (r->exit_code != 0) {
    return absl::InternalError(absl::StrCat(absl::StrJoin(args, " "),
                                            " exited ", r->exit_code, ":\n",
                                            r->stderr_text));
  }
  return absl::OkStatus();
}

// A new key and a certificate signing request for `cn`.
absl::Status KeyAndRequest(const std::string& key, const std::string& csr,
                           const std::string& cn) {
  return Openssl({"req", "-new", "-newkey", "ec", "-pkeyopt",
                  "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key,
                  "-out", csr, "-subj", absl::StrCat("/CN=", cn)});
}

absl::Status SelfSignedCa(const std::string& dir, const std::string& name,
                          std::string* cert) {
  *cert = absl::StrCat(dir, "/", name, ".pem");
  return Openssl({"req", "-x509", "-newkey", "ec", "-pkeyopt",
                  "ec_paramgen_curve:prime256v1", "-nodes", "-keyout",
                  absl::StrCat(dir, "/", name, ".key"), "-out", *cert, "-days",
                  "2", "-subj", absl::StrCat("/CN=", name), "-addext",
                  "basicConstraints=critical,CA:TRUE", "-addext",
                  "keyUsage=critical,keyCertSign,cRLSign"});
}

// A leaf certificate for `name` signed by CA `ca` with extensions `ext`.
absl::Status Leaf(const std::string& dir, const std::string& ca,
                  const std::string& name, const std::string& ext, int serial,
                  std::string* cert, std::string* key) {
  *cert = absl::StrCat(dir, "/", name, ".pem");
  *key = absl::StrCat(dir, "/", name, ".key");
  const std::string csr = absl::StrCat(dir, "/", name, ".csr");
  const std::string ext_file = absl::StrCat(dir, "/", name, ".ext");
  std::ofstream(ext_file) << ext;
  if (absl::Status s = KeyAndRequest(*key, csr, name); !s.ok()) return s;
  return Openssl({"x509", "-req", "-in", csr, "-CA",
                  absl::StrCat(dir, "/", ca, ".pem"), "-CAkey",
                  absl::StrCat(dir, "/", ca, ".key"), "-set_serial",
                  absl::StrCat(serial), "-days", "2", "-extfile", ext_file,
                  "-out", *cert});
}

}  // namespace

absl::StatusOr<TestPki> TestPki::Create(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec)
    return absl::InternalError(
        absl::StrCat("cannot create ", dir, ": ", ec.message()));
  TestPki pki;
  constexpr char kServerExt[] =
      "basicConstraints=CA:FALSE\n"
      "keyUsage=critical,digitalSignature\n"
      "extendedKeyUsage=serverAuth\n"
      "subjectAltName=IP:127.0.0.1,DNS:localhost\n";
  constexpr char kClientExt[] =
      "basicConstraints=CA:FALSE\n"
      "keyUsage=critical,digitalSignature\n"
      "extendedKeyUsage=clientAuth\n";
  for (absl::Status s : {
           SelfSignedCa(dir, "ca", &pki.ca_cert),
           SelfSignedCa(dir, "other-ca", &pki.other_ca_cert),
           Leaf(dir, "ca", "server", kServerExt, 2, &pki.server_cert,
                &pki.server_key),
           Leaf(dir, "ca", "client", kClientExt, 3, &pki.client_cert,
                &pki.client_key),
           Leaf(dir, "other-ca", "other-client", kClientExt, 4,
                &pki.other_client_cert, &pki.other_client_key),
       }) {
    if (!s.ok()) return s;
  }
  return pki;
}

}  // namespace corral::testing
