#include "client/corralctl/shell.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"

extern char** environ;

namespace corral::ctl {
namespace {

absl::Status ErrnoError(absl::string_view what, int err) {
  return absl::InternalError(absl::StrCat(what, ": ", std::strerror(err)));
}

}  // namespace

absl::StatusOr<std::string> RunShell(absl::string_view command) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return ErrnoError("pipe", errno);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  // dup2 clears O_CLOEXEC on the child's stdout; both pipe ends close on exec.
  posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);

  std::string command_copy(command);
  char sh[] = "/bin/sh";
  char dash_c[] = "-c";
  char* argv[] = {sh, dash_c, command_copy.data(), nullptr};
  pid_t pid = 0;
  const int spawn_error =
      ::posix_spawn(&pid, "/bin/sh", &actions, nullptr, argv, environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(fds[1]);
  if (spawn_error != 0) {
    ::close(fds[0]);
    return ErrnoError("cannot start /bin/sh", spawn_error);
  }

  std::string output;
  char buffer[65536];
  while (true) {
    const ssize_t n = ::read(fds[0], buffer, sizeof(buffer));
    if (n > 0) {
      output.append(buffer, static_cast<size_t>(n));
    } else if (n == 0 || errno != EINTR) {
      break;
    }
  }
  ::close(fds[0]);

  int wstatus = 0;
  while (::waitpid(pid, &wstatus, 0) < 0) {
    if (errno != EINTR) return ErrnoError("waitpid", errno);
  }
  if (WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0) return output;
  if (WIFEXITED(wstatus)) {
    return absl::UnknownError(
        absl::StrCat("command exited with status ", WEXITSTATUS(wstatus)));
  }
  if (WIFSIGNALED(wstatus)) {
    return absl::UnknownError(
        absl::StrCat("command killed by signal ", WTERMSIG(wstatus)));
  }
  return absl::UnknownError("command ended abnormally");
}

}  // namespace corral::ctl
