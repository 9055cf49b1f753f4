// The one rule for the outputs of a command (docs/SECURITY.md):
//   - every output is written to a temporary file in its target's folder, and all temporaries are
//     renamed over their targets only after all of them were written (commit());
//   - a symlink is followed: its final target is replaced, the link stays;
//   - an existing target that is not a regular file (a device, a FIFO, a directory), two outputs
//     naming the same file, and an output that is one of the command's inputs are refused before
//     any work starts;
//   - "-" means standard output (the file is written to a temporary, then copied to stdout);
//   - SIGINT, SIGTERM and SIGHUP remove the temporaries (earlier files stay intact), then the
//     process dies of the signal as it would have.
#pragma once

#include <string>
#include <vector>

namespace musicgen::cli {

class OutputSet {
 public:
  OutputSet();
  // Removes every temporary that was not committed.
  ~OutputSet();
  OutputSet(const OutputSet&) = delete;
  OutputSet& operator=(const OutputSet&) = delete;

  // Registers an output (what: the option, for messages, e.g. "--output"); returns its index.
  // Throws musicgen::Error when the target cannot be written as the rule says.
  size_t add(const std::string& path, const std::string& what);
  // Refuses (musicgen::Error) any output that is the file `input` (same device and inode; links
  // followed). A directory input checks every file in it (a checkpoint folder).
  void check_not_input(const std::string& input, const std::string& what) const;
  // The temporary to write output i to (in the target's folder; removed on failure or signal).
  const std::string& temp_path(size_t i) const { return outputs_[i].temp; }
  // The final file output i replaces ("-" for stdout), for messages.
  const std::string& target(size_t i) const { return outputs_[i].target; }
  // Renames every temporary over its target (stdout: copies it out), with the signals blocked so
  // that an interruption cannot leave half of the outputs renamed.
  void commit();

 private:
  struct Output {
    std::string given, target, temp;
    bool to_stdout = false;
  };
  std::vector<Output> outputs_;
  bool committed_ = false;
};

}  // namespace musicgen::cli
