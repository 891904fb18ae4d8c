#include "platform/yara_scanner.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>
#include <yara.h>

#include <algorithm>
#include <filesystem>
#include <mutex>
#include <thread>

#include "platform/linux/procfs.h"

namespace riposte::platform {

namespace {

namespace fs = std::filesystem;

constexpr const char* kExternals[] = {"filename", "filepath", "extension", "filetype", "owner"};

// libyara keeps process-wide state; initialise it once for the life of the process.
Status ensure_yara_initialized() {
  static const int rc = yr_initialize();
  if (rc != ERROR_SUCCESS) return Error{fmt::format("libyara failed to initialise (error {})", rc)};
  return ok_status();
}

std::string printable(const std::uint8_t* data, int length) {
  std::string out;
  for (int i = 0; i < std::min(length, 64); ++i) {
    const auto c = data[i];
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out.push_back(static_cast<char>(c));
    } else {
      out += fmt::format("\\x{:02x}", c);
    }
  }
  return out;
}

// File types by their first bytes, named as LOKI's signature-base names them
// (misc/file-type-signatures.txt); anything else is "UNKNOWN", as there.
std::string file_type_of(const std::uint8_t* head, std::size_t n) {
  struct Magic {
    std::string_view bytes;
    const char* type;
  };
  static constexpr Magic kMagics[] = {
      {"\x7f" "ELF", "ELF"},           {"MZ", "EXE"},   {"PK\x03\x04", "ZIP"},
      {"%PDF", "PDF"},                  {"\x1f\x8b", "GZIP"}, {"Rar!", "RAR"},
      {"7z\xbc\xaf\x27\x1c", "7ZIP"}, {"\xca\xfe\xba\xbe", "JAVA"},
      {"\xd0\xcf\x11\xe0", "OLE"},    {"#!", "SCRIPT"},
  };
  const std::string_view start(reinterpret_cast<const char*>(head), n);
  for (const auto& m : kMagics)
    if (start.starts_with(m.bytes)) return m.type;
  return "UNKNOWN";
}

// Sets the externals (yara_scanner.h) for one target: the file `path` names, whose first bytes
// and owner are those of `fd`.
void define_externals(YR_SCANNER* scanner, const fs::path& path, int fd, uid_t owner) {
  std::uint8_t head[8] = {};
  const ssize_t n = ::pread(fd, head, sizeof(head), 0);
  std::string extension = path.extension().string();
  std::transform(extension.begin(), extension.end(), extension.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  const auto set = [&](const char* name, const std::string& value) {
    yr_scanner_define_string_variable(scanner, name, value.c_str());
  };
  set("filename", path.filename().string());
  set("filepath", path.parent_path().string());
  set("extension", extension);
  set("filetype", file_type_of(head, n > 0 ? static_cast<std::size_t>(n) : 0));
  set("owner", linux_impl::user_name(owner));
}

struct ScanState {
  std::string target;
  std::vector<YaraMatch>* matches;
  std::mutex* mutex;
};

// libyara keeps YR_MATCH records in its arena at 4-byte alignment; reading them (as the yara CLI
// does) is fine on x86-64 but trips UBSan's alignment check, which is therefore off here only.
__attribute__((no_sanitize("alignment"))) int on_scan_message(YR_SCAN_CONTEXT* context, int message,
                                                              void* message_data, void* user_data) {
  if (message != CALLBACK_MSG_RULE_MATCHING) return CALLBACK_CONTINUE;
  auto* state = static_cast<ScanState*>(user_data);
  const auto* rule = static_cast<YR_RULE*>(message_data);
  YaraMatch match;
  match.rule = rule->identifier;
  match.rule_namespace = rule->ns->name;
  match.target = state->target;
  const char* tag = nullptr;
  yr_rule_tags_foreach(rule, tag) { match.tags.emplace_back(tag); }
  const YR_META* meta = nullptr;
  yr_rule_metas_foreach(rule, meta) {
    match.metadata[meta->identifier] = meta->type == META_TYPE_STRING ? std::string(meta->string)
                                       : meta->type == META_TYPE_BOOLEAN
                                           ? (meta->integer ? "true" : "false")
                                           : std::to_string(meta->integer);
  }
  const YR_STRING* string = nullptr;
  yr_rule_strings_foreach(rule, string) {
    const YR_MATCH* m = nullptr;
    yr_string_matches_foreach(context, string, m) {
      match.strings.push_back({string->identifier, static_cast<std::uint64_t>(m->base + m->offset),
                               static_cast<std::uint32_t>(m->match_length),
                               printable(m->data, m->data_length)});
    }
  }
  std::lock_guard lock(*state->mutex);
  state->matches->push_back(std::move(match));
  return CALLBACK_CONTINUE;
}

struct ScannerDeleter {
  void operator()(YR_SCANNER* s) const { yr_scanner_destroy(s); }
};

std::string scan_error(int rc) {
  switch (rc) {
    case ERROR_SCAN_TIMEOUT:
      return "scan timed out";
    case ERROR_COULD_NOT_OPEN_FILE:
      return "cannot open";
    case ERROR_COULD_NOT_MAP_FILE:
      return "cannot map";
    case ERROR_INSUFFICIENT_MEMORY:
      return "out of memory";
    default:
      return fmt::format("libyara error {}", rc);
  }
}

// Memory blocks for one thread's share of a process: each readable region is one block, read
// with process_vm_readv when YARA asks for it.
struct RegionIterator {
  pid_t pid;
  int mem_fd;
  std::vector<linux_impl::Mapping> regions;
  std::size_t next = 0;
  YR_MEMORY_BLOCK block{};
  std::vector<std::uint8_t> buffer;
  std::uint64_t bytes = 0;

  static YR_MEMORY_BLOCK* first(YR_MEMORY_BLOCK_ITERATOR* it) {
    static_cast<RegionIterator*>(it->context)->next = 0;
    return advance(it);
  }
  static YR_MEMORY_BLOCK* advance(YR_MEMORY_BLOCK_ITERATOR* it) {
    auto* self = static_cast<RegionIterator*>(it->context);
    it->last_error = ERROR_SUCCESS;
    if (self->next >= self->regions.size()) return nullptr;
    const auto& region = self->regions[self->next++];
    self->block.base = region.start;
    self->block.size = region.end - region.start;
    self->block.context = self;
    self->block.fetch_data = fetch;
    return &self->block;
  }
  static const std::uint8_t* fetch(YR_MEMORY_BLOCK* block) {
    auto* self = static_cast<RegionIterator*>(block->context);
    self->buffer.resize(block->size);
    iovec local{self->buffer.data(), block->size};
    iovec remote{reinterpret_cast<void*>(block->base), block->size};
    ssize_t n = ::process_vm_readv(self->pid, &local, 1, &remote, 1, 0);
    if (n != static_cast<ssize_t>(block->size)) {
      n = ::pread(self->mem_fd, self->buffer.data(), block->size, static_cast<off_t>(block->base));
    }
    if (n != static_cast<ssize_t>(block->size)) return nullptr;  // YARA skips unreadable blocks
    self->bytes += block->size;
    return self->buffer.data();
  }
};

class LibyaraScanner final : public YaraScanner {
 public:
  Result<YaraScanReport> scan_path(const YaraRules& rules, const std::string& path,
                                   const YaraScanOptions& options) override {
    std::error_code ec;
    if (!fs::exists(path, ec)) return Error{fmt::format("{}: no such file or directory", path)};
    std::vector<fs::path> files;
    if (fs::is_directory(path, ec)) {
      auto collect = [&](auto iterator) {
        // Links met on the walk are not followed: whoever can write the directory chose them.
        for (const auto& entry : iterator) {
          if (!entry.is_symlink(ec) && entry.is_regular_file(ec)) files.push_back(entry.path());
        }
      };
      const auto opts = fs::directory_options::skip_permission_denied;
      if (options.recursive) {
        collect(fs::recursive_directory_iterator(path, opts, ec));
      } else {
        collect(fs::directory_iterator(path, opts, ec));
      }
    } else {
      files.push_back(path);
    }
    YaraScanReport report;
    std::mutex mutex;
    for (const auto& file : files) {
      YR_SCANNER* raw = nullptr;
      if (yr_scanner_create(rules.get(), &raw) != ERROR_SUCCESS)
        return Error{"cannot create a YARA scanner"};
      std::unique_ptr<YR_SCANNER, ScannerDeleter> scanner(raw);
      ScanState state{file.string(), &report.matches, &mutex};
      yr_scanner_set_callback(scanner.get(), on_scan_message, &state);
      yr_scanner_set_timeout(scanner.get(), options.timeout_seconds);
      // One descriptor for the externals, the scan and the size: all about the same file.
      const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
      struct stat st {};
      int rc = ERROR_COULD_NOT_OPEN_FILE;
      if (fd >= 0 && ::fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
        define_externals(scanner.get(), file, fd, st.st_uid);
        rc = yr_scanner_scan_fd(scanner.get(), fd);
      }
      if (fd >= 0) ::close(fd);
      ++report.targets_scanned;
      if (options.progress) options.progress(report.targets_scanned, files.size());
      if (rc != ERROR_SUCCESS) {
        report.timed_out |= rc == ERROR_SCAN_TIMEOUT;
        report.errors.push_back(fmt::format("{}: {}", file.string(), scan_error(rc)));
        continue;
      }
      report.bytes_scanned += static_cast<std::uint64_t>(st.st_size);
    }
    return report;
  }

  Result<YaraScanReport> scan_process(const YaraRules& rules, const ProcessRef& target,
                                      const YaraScanOptions& options) override {
    auto pidfd = linux_impl::open_verified(target);
    if (!pidfd) return pidfd.error();
    linux_impl::StoppedProcess stopped(target.pid);  // a consistent view, as `yara PID` has
    std::vector<linux_impl::Mapping> regions;
    std::uint64_t total = 0;
    for (auto& m : linux_impl::read_maps(target.pid)) {
      if (m.perms.empty() || m.perms[0] != 'r' || m.path == "[vvar]" || m.path == "[vsyscall]")
        continue;
      total += m.end - m.start;
      regions.push_back(std::move(m));
    }
    if (regions.empty()) return Error{fmt::format("no readable memory in process {}", target.pid)};
    const int mem = ::open(fmt::format("/proc/{}/mem", target.pid).c_str(), O_RDONLY | O_CLOEXEC);
    if (mem < 0)
      return Error{fmt::format("cannot open memory of {}: {}", target.pid, std::strerror(errno))};

    // The externals describe the executable, read through /proc/PID/exe (right for a deleted
    // binary or one in another mount namespace), and the process's owner.
    const auto exe = linux_impl::read_exe_link(target.pid);
    const int exe_fd =
        ::open(fmt::format("/proc/{}/exe", target.pid).c_str(), O_RDONLY | O_CLOEXEC);
    struct stat proc_st {};
    const uid_t owner = ::stat(fmt::format("/proc/{}", target.pid).c_str(), &proc_st) == 0
                            ? proc_st.st_uid
                            : static_cast<uid_t>(-1);

    // Contiguous shares of about equal size: small processes get one thread.
    const int threads = total < (64u << 20) ? 1 : std::max(1, options.threads);
    std::vector<RegionIterator> parts(threads);
    std::uint64_t share = total / threads + 1, filled = 0;
    for (auto& region : regions) {
      const auto index = std::min<std::uint64_t>(filled / share, threads - 1);
      filled += region.end - region.start;
      parts[index].regions.push_back(region);
    }
    YaraScanReport report;
    std::mutex mutex;
    std::vector<int> results(threads, ERROR_SUCCESS);
    auto scan_part = [&](int i) {
      auto& part = parts[i];
      part.pid = target.pid;
      part.mem_fd = mem;
      YR_MEMORY_BLOCK_ITERATOR iterator{&part, RegionIterator::first, RegionIterator::advance,
                                        nullptr, ERROR_SUCCESS};
      YR_SCANNER* raw = nullptr;
      if (yr_scanner_create(rules.get(), &raw) != ERROR_SUCCESS) {
        results[i] = ERROR_INSUFFICIENT_MEMORY;
        return;
      }
      std::unique_ptr<YR_SCANNER, ScannerDeleter> scanner(raw);
      ScanState state{fmt::format("pid {}", target.pid), &report.matches, &mutex};
      yr_scanner_set_callback(scanner.get(), on_scan_message, &state);
      yr_scanner_set_timeout(scanner.get(), options.timeout_seconds);
      yr_scanner_set_flags(scanner.get(), SCAN_FLAGS_PROCESS_MEMORY);
      define_externals(scanner.get(), exe.path, exe_fd, owner);
      results[i] = yr_scanner_scan_mem_blocks(scanner.get(), &iterator);
    };
    std::vector<std::thread> workers;
    for (int i = 1; i < threads; ++i) workers.emplace_back(scan_part, i);
    scan_part(0);
    for (auto& w : workers) w.join();
    ::close(mem);
    if (exe_fd >= 0) ::close(exe_fd);

    for (int i = 0; i < threads; ++i) {
      report.bytes_scanned += parts[i].bytes;
      if (results[i] != ERROR_SUCCESS) {
        report.timed_out |= results[i] == ERROR_SCAN_TIMEOUT;
        report.errors.push_back(fmt::format("pid {}: {}", target.pid, scan_error(results[i])));
      }
    }
    report.targets_scanned = 1;
    // Same rule matched in both parts: merge into one match, strings in address order.
    std::map<std::pair<std::string, std::string>, YaraMatch> merged;
    for (auto& m : report.matches) {
      auto [it, inserted] = merged.try_emplace({m.rule_namespace, m.rule}, m);
      if (!inserted)
        it->second.strings.insert(it->second.strings.end(), m.strings.begin(), m.strings.end());
    }
    report.matches.clear();
    for (auto& [key, m] : merged) {
      std::sort(m.strings.begin(), m.strings.end(),
                [](const auto& a, const auto& b) { return a.offset < b.offset; });
      report.matches.push_back(std::move(m));
    }
    return report;
  }
};

const char* refuse_include(const char* /*include_name*/, const char* /*calling_rule_filename*/,
                           const char* /*calling_rule_namespace*/, void* user_data) {
  static_cast<std::vector<std::string>*>(user_data)->push_back(
      "include is not allowed: a rule set must be sent whole (concatenate the files)");
  return nullptr;  // libyara then reports the include it could not open, with its line
}

void collect_compiler_message(int error_level, const char* /*file*/, int line,
                              const YR_RULE* /*rule*/, const char* message, void* user_data) {
  if (error_level != YARA_ERROR_LEVEL_ERROR) return;
  static_cast<std::vector<std::string>*>(user_data)->push_back(
      fmt::format("line {}: {}", line, message));
}

}  // namespace

Result<std::shared_ptr<YaraRules>> YaraRules::compile(const std::string& source) {
  if (auto s = ensure_yara_initialized(); !s) return s.error();
  YR_COMPILER* compiler = nullptr;
  if (yr_compiler_create(&compiler) != ERROR_SUCCESS) return Error{"cannot create a YARA compiler"};
  std::unique_ptr<YR_COMPILER, void (*)(YR_COMPILER*)> owner(compiler, yr_compiler_destroy);
  std::vector<std::string> errors;
  yr_compiler_set_callback(compiler, collect_compiler_message, &errors);
  // A rule set is the bytes its hash names: `include` would compile files of the endpoint into
  // it (unsigned, and a probe for which files exist; a FIFO would hang the compile). Refused.
  yr_compiler_set_include_callback(compiler, refuse_include, nullptr, &errors);
  for (const char* name : kExternals) yr_compiler_define_string_variable(compiler, name, "");
  if (yr_compiler_add_string(compiler, source.c_str(), nullptr) != 0) {
    std::string text = "YARA rules do not compile: ";
    for (std::size_t i = 0; i < errors.size(); ++i) text += (i ? "; " : "") + errors[i];
    return Error{text};
  }
  YR_RULES* rules = nullptr;
  if (yr_compiler_get_rules(compiler, &rules) != ERROR_SUCCESS)
    return Error{"cannot build compiled YARA rules"};
  return std::shared_ptr<YaraRules>(new YaraRules(rules));
}

YaraRules::~YaraRules() { yr_rules_destroy(rules_); }

int YaraRules::rule_count() const {
  int count = 0;
  const YR_RULE* rule = nullptr;
  yr_rules_foreach(rules_, rule) { ++count; }
  return count;
}

std::unique_ptr<YaraScanner> make_yara_scanner() { return std::make_unique<LibyaraScanner>(); }

}  // namespace riposte::platform
