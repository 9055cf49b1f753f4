#include "output_files.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "musicgen/error.h"

namespace musicgen::cli {

namespace fs = std::filesystem;

namespace {

// Temporaries to remove when a signal arrives: a fixed table of C strings that the handler reads
// without locks or allocation (async-signal-safe). A slot is published after its string is
// complete and cleared before the string is freed.
constexpr int kMaxTemps = 256;
std::atomic<char*> g_temps[kMaxTemps];
constexpr int kSignals[] = {SIGINT, SIGTERM, SIGHUP, SIGPIPE};

extern "C" void remove_temps_and_die(int sig) {
  for (auto& slot : g_temps)
    if (char* p = slot.load()) ::unlink(p);
  ::signal(sig, SIG_DFL);
  ::raise(sig);
}

void install_handlers() {
  static const bool installed = [] {
    for (int sig : kSignals) {
      struct sigaction sa {};
      sa.sa_handler = remove_temps_and_die;
      sigemptyset(&sa.sa_mask);
      sa.sa_flags = SA_RESETHAND;
      ::sigaction(sig, &sa, nullptr);
    }
    return true;
  }();
  (void)installed;
}

void register_temp(const std::string& path) {
  char* copy = ::strdup(path.c_str());
  for (auto& slot : g_temps) {
    char* expected = nullptr;
    if (slot.compare_exchange_strong(expected, copy)) return;
  }
  std::free(copy);
  fail(ErrorCode::kInvalidArgument, "too many output files in one command (at most " +
                                        std::to_string(kMaxTemps / 2) + ")");
}

void unregister_temp(const std::string& path) {
  for (auto& slot : g_temps) {
    char* p = slot.load();
    if (p != nullptr && path == p && slot.compare_exchange_strong(p, nullptr)) {
      std::free(p);
      return;
    }
  }
}

// The library writers (write_audio_file, quantize_model) write `path + ".tmp-PID"` and rename it
// onto the path they are given; that inner temporary is removed on a signal too.
std::string inner_temp(const std::string& temp) {
  return temp + ".tmp-" + std::to_string(::getpid());
}

std::string kind_of(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISSOCK(mode)) return "a socket";
  return "not a regular file";
}

[[noreturn]] void refuse(const std::string& message) {
  fail(ErrorCode::kInvalidArgument, message);
}

// Follows a chain of symlinks to the path that a write would replace.
fs::path follow_links(const std::string& given, const std::string& what) {
  fs::path p(given);
  for (int hop = 0; hop < 40; ++hop) {
    struct stat st {};
    if (::lstat(p.c_str(), &st) != 0 || !S_ISLNK(st.st_mode)) return p;
    std::error_code ec;
    const fs::path t = fs::read_symlink(p, ec);
    if (ec) refuse("cannot read the link " + what + " '" + given + "' (" + ec.message() + ")");
    p = t.is_absolute() ? t : p.parent_path() / t;
  }
  refuse(what + " '" + given + "' is a chain of more than 40 symlinks; give a file name");
}

bool same_file(const struct stat& a, const struct stat& b) {
  return a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

}  // namespace

OutputSet::OutputSet() { install_handlers(); }

OutputSet::~OutputSet() {
  for (const Output& o : outputs_) {
    if (!committed_) {
      ::unlink(o.temp.c_str());
      ::unlink(inner_temp(o.temp).c_str());
    }
    unregister_temp(o.temp);
    unregister_temp(inner_temp(o.temp));
  }
}

size_t OutputSet::add(const std::string& path, const std::string& what) {
  static std::atomic<unsigned> counter{0};
  const std::string unique =
      ".tmp-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
  Output o;
  o.given = path;
  if (path.empty()) refuse(what + " is empty; give a file name");
  if (path == "-") {
    for (const Output& other : outputs_)
      if (other.to_stdout)
        refuse(what + " and another output both name standard output ('-'); give a file name");
    o.to_stdout = true;
    o.target = "-";
    std::error_code ec;
    fs::path dir = fs::temp_directory_path(ec);
    if (ec) dir = "/tmp";
    o.temp = (dir / (".musicgen-stdout" + unique)).string();
  } else {
    const fs::path target = follow_links(path, what);
    const std::string shown =
        target.string() == path ? "'" + path + "'" : "'" + path + "' (a link to '" +
                                                          target.string() + "')";
    struct stat st {};
    // The kernel's own resolution too: /dev/stdout -> /proc/self/fd/1 -> a pipe or a terminal
    // has no readable final name.
    if (::stat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode))
      refuse(what + " '" + path + "' is " + kind_of(st.st_mode) +
             ", not a regular file; refusing to replace it, give a file name");
    if (::stat(target.c_str(), &st) == 0 && !S_ISREG(st.st_mode)) {
      if (S_ISDIR(st.st_mode)) refuse("cannot write " + what + " " + shown + ": it is a directory; give a file name");
      refuse(what + " " + shown + " is " + kind_of(st.st_mode) +
             ", not a regular file; refusing to replace it, give a file name");
    }
    const fs::path dir = target.has_parent_path() ? target.parent_path() : fs::path(".");
    std::error_code ec;
    if (!fs::is_directory(dir, ec))
      fail(ErrorCode::kIo, "cannot write '" + path + "': directory '" + dir.string() +
                               "' does not exist; create it or choose another " + what);
    if (::access(dir.c_str(), W_OK) != 0)
      fail(ErrorCode::kIo, "cannot write '" + path + "': directory '" + dir.string() +
                               "' is not writable; choose another " + what);
    o.target = target.string();
    const fs::path canon = fs::weakly_canonical(target, ec);
    for (const Output& other : outputs_) {
      if (other.to_stdout) continue;
      struct stat a {}, b {};
      const bool same =
          (!ec && fs::weakly_canonical(other.target, ec) == canon) ||
          (::stat(other.target.c_str(), &a) == 0 && ::stat(target.c_str(), &b) == 0 &&
           same_file(a, b));
      if (same)
        refuse(what + " '" + path + "' names the same file as another output ('" + other.given +
               "'); give different files");
    }
    o.temp = (dir / ("." + target.filename().string() + unique)).string();
  }
  register_temp(o.temp);
  register_temp(inner_temp(o.temp));
  outputs_.push_back(std::move(o));
  return outputs_.size() - 1;
}

void OutputSet::check_not_input(const std::string& input, const std::string& what) const {
  struct stat in {};
  if (::stat(input.c_str(), &in) != 0) return;
  if (S_ISDIR(in.st_mode)) {
    std::error_code ec;
    for (fs::directory_iterator it(input, ec), end; !ec && it != end; it.increment(ec))
      check_not_input(it->path().string(), what + " file");
    return;
  }
  for (const Output& o : outputs_) {
    struct stat out {};
    if (o.to_stdout || ::stat(o.target.c_str(), &out) != 0) continue;
    if (same_file(in, out))
      refuse("the output '" + o.given + "' is " + what + " '" + input +
             "'; writing it would destroy that input, choose another output file");
  }
}

void OutputSet::commit() {
  // Test hook: a signal after every temporary was written, before any rename (test_cli).
  if (const char* sig = std::getenv("MUSICGEN_TEST_SIGNAL_BEFORE_COMMIT")) ::raise(std::atoi(sig));
  sigset_t block, old;
  sigemptyset(&block);
  for (int sig : kSignals)
    if (sig != SIGPIPE) sigaddset(&block, sig);
  ::pthread_sigmask(SIG_BLOCK, &block, &old);
  struct Restore {
    sigset_t* old;
    ~Restore() { ::pthread_sigmask(SIG_SETMASK, old, nullptr); }
  } restore{&old};
  // Everything was written; check every temporary exists before renaming any.
  for (const Output& o : outputs_)
    if (::access(o.temp.c_str(), F_OK) != 0)
      fail(ErrorCode::kIo, "the output '" + o.given + "' was not written; nothing was replaced");
  for (const Output& o : outputs_) {
    if (o.to_stdout) {
      const int fd = ::open(o.temp.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0) fail(ErrorCode::kIo, "cannot read back the output for standard output");
      char buf[1 << 16];
      bool ok = true;
      for (;;) {
        const ssize_t n = ::read(fd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
          ok = n == 0;
          break;
        }
        for (ssize_t done = 0; done < n;) {
          const ssize_t w = ::write(STDOUT_FILENO, buf + done, static_cast<size_t>(n - done));
          if (w < 0 && errno == EINTR) continue;
          if (w <= 0) {
            ok = false;
            break;
          }
          done += w;
        }
        if (!ok) break;
      }
      ::close(fd);
      ::unlink(o.temp.c_str());
      if (!ok) fail(ErrorCode::kIo, "writing to standard output failed (" +
                                        std::string(std::strerror(errno)) + ")");
      continue;
    }
    if (std::rename(o.temp.c_str(), o.target.c_str()) != 0) {
      const int err = errno;
      ::unlink(o.temp.c_str());
      fail(ErrorCode::kIo,
           "cannot move the output into '" + o.target + "' (" + std::strerror(err) + ")");
    }
  }
  committed_ = true;
}

}  // namespace musicgen::cli
