#include "agent/action_executor.h"

#include <fmt/format.h>

#include <algorithm>
#include <fstream>
#include <functional>
#include <map>
#include <set>

#include "agent/evidence_file.h"
#include "agent/os_facts.h"
#include "agent/sha256_sink.h"
#include "common/secure_file.h"
#include "common/utf8.h"
#include "protocol/action_kinds.h"
#include "protocol/actions.pb.h"
#include "protocol/wire_text.h"

namespace riposte::agent {

namespace {

namespace ak = action_kind;
using google::protobuf::Message;

// What a handler produces: the typed result, or an error and whether policy refused it.
struct Outcome {
  std::unique_ptr<Message> result;
  std::string error;
  bool refused = false;
  proto::ActionResult::Refusal refusal = proto::ActionResult::REFUSAL_SAFETY_POLICY;
};

Outcome failed(std::string message) { return {nullptr, std::move(message), false}; }
Outcome refused(std::string message) { return {nullptr, std::move(message), true}; }
Outcome spool_full(std::uint64_t budget) {
  return {nullptr,
          fmt::format("the agent's evidence spool is full ({} bytes free); nothing was collected",
                      budget),
          true, proto::ActionResult::REFUSAL_SPOOL_FULL};
}

// Evidence needs room for at least this much beyond headers before an action starts writing.
constexpr std::uint64_t kMinEvidenceRoom = 1 << 20;
template <typename T>
Outcome done(T result) {
  return {std::make_unique<T>(std::move(result)), "", false};
}

platform::ProcessRef ref_of(const proto::ProcessRef& r) {
  return {static_cast<pid_t>(r.pid()), r.start_ticks()};
}

void fill(proto::ProcessEntry* e, const platform::ProcessInfo& p) {
  e->set_pid(p.pid);
  e->set_ppid(p.ppid);
  e->set_name(p.name);
  e->set_exe(p.exe);
  e->set_cmdline(p.cmdline);
  e->set_uid(p.uid);
  e->set_user(p.user);
  e->set_start_ticks(p.start_ticks);
  e->set_start_time_unix_ms(p.start_time_unix_ms);
  e->set_rss_bytes(p.rss_bytes);
  e->set_state(p.state);
  e->set_exe_deleted(p.exe_deleted);
  e->set_mount_namespace(p.mount_namespace);
  e->set_pid_namespace(p.pid_namespace);
  e->set_script(p.script);
  e->set_script_proof(p.script_proof);
  e->set_thread_id(p.thread_id);
}

proto::FileResult file_result(const platform::FileInfo& info) {
  proto::FileResult r;
  r.set_path(info.path);
  r.set_resolved_path(info.resolved_path);
  r.set_deleted(info.deleted);
  r.set_mount_namespace(info.mount_namespace);
  r.set_pid_namespace(info.pid_namespace);
  r.set_interpreter(info.interpreter);
  r.set_size(info.size);
  r.set_mode(info.mode);
  r.set_uid(info.uid);
  r.set_gid(info.gid);
  r.set_mtime_unix_ms(info.mtime_unix_ms);
  return r;
}

// A path parameter is wire text (common/utf8.h): the bytes it stands for are the OS path, so that
// a file whose name is not UTF-8, as process.list or a YARA match reported it, can be acted on.
Result<std::string> os_path(const std::string& wire) {
  auto path = from_wire_text(wire);
  if (!path)
    return Error{fmt::format("path '{}' is not wire text: {}", wire, path.error().message)};
  if (path->find('\0') != std::string::npos)
    return Error{fmt::format("path '{}' holds a NUL byte, which no path can", wire)};
  return path;
}

// A result travels in one frame (framing.h: 4 MiB): a larger one could never be delivered, and
// the agent would send it again at every reconnect, cut off for good. Any one text in a result
// (a command line near ARG_MAX, escaped five-fold) is cut to kMaxResultTextBytes, which still
// holds a whole path (PATH_MAX 4096 bytes, five-fold as wire text when none is UTF-8: a path shown
// is one that can be acted on); a result still over kMaxResultBytes fails the action with its size.
constexpr std::size_t kMaxResultTextBytes = 32 << 10;
constexpr std::size_t kMaxResultBytes = 3 << 20;

// Evidence and vault names: the action id keeps them unique and traceable to the action.
std::string safe_name(const std::string& action_id, std::string_view suffix) {
  std::string name;
  for (char c : action_id)
    name.push_back(std::isalnum(static_cast<unsigned char>(c)) || c == '-' ? c : '_');
  return name + std::string(suffix);
}

}  // namespace

ActionExecutor::ActionExecutor(ExecutorContext context)
    : ctx_(std::move(context)), rule_sets_(ctx_.rule_set_dir, ctx_.fetch_rule_set) {}

proto::ActionResult ActionExecutor::execute(const std::string& action_id, const std::string& kind,
                                            const std::string& parameters) {
  auto& c = ctx_;
  std::vector<proto::EvidenceRef> produced;
  // Said with a successful result: which process a thread id turned out to name.
  std::string resolved_note;
  // The process a ref names, ready to act on: a thread id resolves to its process (and the note
  // says so); a kernel thread is refused; anything else that cannot be resolved fails the action.
  auto target_process = [&](const proto::ProcessRef& wire,
                            platform::ProcessRef* out) -> std::optional<Outcome> {
    auto resolved = c.processes.resolve(ref_of(wire));
    if (!resolved) {
      auto info = c.processes.inspect(static_cast<pid_t>(wire.pid()));
      if (info && info->kernel_thread) return refused(resolved.error().message);
      return failed(resolved.error().message);
    }
    if (!resolved->description.empty())
      resolved_note = fmt::format("the pid given, {}, is {}: acted on process {}", wire.pid(),
                                  resolved->description, resolved->process.pid);
    *out = resolved->process;
    return std::nullopt;
  };
  const std::uint64_t budget = c.evidence_budget ? c.evidence_budget() : UINT64_MAX;
  // file.hash and file.collect: the file a path names, or the image (or script) a process runs.
  // The process is resolved first (file_process), so a kernel thread is refused like every other
  // process action, not failed.
  auto file_process = [&](const proto::FileParams& p,
                          platform::ProcessRef* out) -> std::optional<Outcome> {
    if (!p.has_process()) return std::nullopt;
    return target_process(p.process(), out);
  };
  auto stream_file = [&](const proto::FileParams& p, const platform::ProcessRef& process,
                         platform::ByteSink& out, std::uint64_t max_bytes) {
    if (!p.has_process()) {
      if (p.script()) return Result<platform::FileInfo>(Error{"script needs a process"});
      auto path = os_path(p.path());
      if (!path) return Result<platform::FileInfo>(path.error());
      return c.files.stream(*path, out, max_bytes);
    }
    return p.script() ? c.files.stream_script(process, out, max_bytes)
                      : c.files.stream_executable(process, out, max_bytes);
  };
  auto add_evidence = [&](const std::filesystem::path& path, const std::string& sha,
                          std::uint64_t size) {
    proto::EvidenceRef ref;
    ref.set_sha256(sha);
    ref.set_size(size);
    ref.set_name(path.filename().string());
    produced.push_back(std::move(ref));
  };
  // Progress callbacks, rate-limited to a few per second.
  auto last_report = std::chrono::steady_clock::time_point{};
  auto report_progress = [&](std::uint64_t done, std::uint64_t total, const char* unit) {
    if (!c.progress) return;
    const auto now = std::chrono::steady_clock::now();
    if (done < total && now - last_report < std::chrono::milliseconds(250)) return;
    last_report = now;
    c.progress(action_id, done, total, unit);
  };
  // Parses parameters of type P or fails the action with a clear message.
  auto parse = [&]<typename P>(P& params) { return params.ParseFromString(parameters); };
  // A process action must pass the local policy for the process it names (and its tree): nullopt
  // when it may go ahead, otherwise the refusal (or the failure to look the process up).
  auto check_process = [&](const platform::ProcessRef& ref, bool tree) -> std::optional<Outcome> {
    std::vector<platform::ProcessInfo> members;
    if (tree) {
      auto all = c.processes.tree(ref.pid);
      if (!all) return failed(all.error().message);
      members = std::move(*all);
    } else {
      auto one = c.processes.inspect(ref.pid);
      if (!one) return failed(one.error().message);
      members.push_back(std::move(*one));
    }
    for (const auto& m : members) {
      if (auto s = c.policy.may_signal(m); !s) return refused(s.error().message);
    }
    return std::nullopt;
  };

  using Handler = std::function<Outcome()>;
  const std::map<std::string_view, Handler> handlers = {
      {ak::kProcessList,
       [&] {
         proto::ProcessListParams params;
         if (!parse(params)) return failed("parameters are not a ProcessListParams message");
         auto all = c.processes.list();
         if (!all) return failed(all.error().message);
         // A thread id asked about: its process's entry says so (the listing has processes only).
         if (params.pid() > 0) {
           auto asked = c.processes.inspect(params.pid());
           if (asked && asked->thread_id != 0) {
             for (auto& p : *all)
               if (p.pid == asked->pid) p.thread_id = asked->thread_id;
           }
         }
         proto::ProcessListResult r;
         for (const auto& p : *all) fill(r.add_processes(), p);
         return done(r);
       }},
      {ak::kProcessTree,
       [&] {
         proto::ProcessTreeParams p;
         if (!parse(p)) return failed("parameters are not a ProcessTreeParams message");
         auto tree = c.processes.tree(p.pid());
         if (!tree) return failed(tree.error().message);
         proto::ProcessListResult r;
         for (const auto& m : *tree) fill(r.add_processes(), m);
         return done(r);
       }},
      {ak::kProcessKill,
       [&] {
         proto::ProcessKillParams p;
         if (!parse(p) || !p.has_target())
           return failed("parameters are not a ProcessKillParams with a target");
         platform::ProcessRef target;
         if (auto stop = target_process(p.target(), &target)) return std::move(*stop);
         if (auto stop = check_process(target, p.tree())) return std::move(*stop);
         platform::KillOptions options;
         if (p.grace_ms() > 0) options.grace = std::chrono::milliseconds(p.grace_ms());
         options.tree = p.tree();
         auto reports = c.processes.kill(target, options);
         if (!reports) return failed(reports.error().message);
         proto::ProcessKillResult r;
         for (const auto& k : *reports) {
           auto* e = r.add_processes();
           e->set_pid(k.pid);
           e->set_name(k.name);
           e->set_outcome(platform::to_string(k.outcome));
           e->set_detail(k.detail);
         }
         return done(r);
       }},
      {ak::kProcessSuspend,
       [&] {
         proto::ProcessSignalParams p;
         if (!parse(p) || !p.has_target())
           return failed("parameters are not a ProcessSignalParams with a target");
         platform::ProcessRef target;
         if (auto stop = target_process(p.target(), &target)) return std::move(*stop);
         if (auto stop = check_process(target, false)) return std::move(*stop);
         if (auto s = c.processes.suspend(target); !s) return failed(s.error().message);
         return done(proto::Empty{});
       }},
      {ak::kProcessResume,
       [&] {
         proto::ProcessSignalParams p;
         if (!parse(p) || !p.has_target())
           return failed("parameters are not a ProcessSignalParams with a target");
         platform::ProcessRef target;
         if (auto stop = target_process(p.target(), &target)) return std::move(*stop);
         if (auto s = c.processes.resume(target); !s) return failed(s.error().message);
         return done(proto::Empty{});
       }},
      {ak::kMemoryCapture,
       [&] {
         proto::MemoryCaptureParams p;
         if (!parse(p) || !p.has_target())
           return failed("parameters are not a MemoryCaptureParams with a target");
         platform::ProcessRef target;
         if (auto stop = target_process(p.target(), &target)) return std::move(*stop);
         if (budget < kMinEvidenceRoom) return spool_full(budget);
         const auto room = budget - kMinEvidenceRoom;
         const auto path = c.evidence_dir / safe_name(action_id, ".core");
         auto sink = EvidenceFile::create(path);
         if (!sink) return failed(sink.error().message);
         auto report = c.memory.capture(
             target, **sink,
             {.max_bytes = p.max_bytes() == 0 ? room : std::min<std::uint64_t>(p.max_bytes(), room),
              .include_file_backed = !p.exclude_file_backed(),
              .progress = [&](std::uint64_t done, std::uint64_t total) {
                report_progress(done, total, "bytes");
              }});
         auto sha = (*sink)->finish();
         if (!report || !sha) {
           std::error_code ignored;
           std::filesystem::remove(path, ignored);  // a partial core is no evidence
           return failed(!report ? report.error().message : sha.error().message);
         }
         add_evidence(path, *sha, report->bytes_written);
         proto::MemoryCaptureResult r;
         r.set_evidence_path(path.string());
         r.set_sha256(*sha);
         r.set_bytes(report->bytes_written);
         r.set_memory_bytes(report->memory_bytes);
         r.set_mappings(report->mappings);
         r.set_threads(report->threads);
         for (const auto& s : report->skipped) {
           auto* e = r.add_skipped();
           e->set_start(s.start);
           e->set_end(s.end);
           e->set_path(s.path);
           e->set_reason(s.reason);
         }
         return done(r);
       }},
      {ak::kNetworkQuarantine,
       [&] {
         proto::QuarantineParams p;
         if (!parse(p)) return failed("parameters are not a QuarantineParams message");
         platform::QuarantineSpec spec{c.controller, {}};
         for (const auto& a : p.allow()) {
           spec.allow.push_back({a.address(), static_cast<std::uint16_t>(a.port()), a.protocol()});
         }
         spec.allow.insert(spec.allow.end(), c.other_controllers.begin(),
                           c.other_controllers.end());
         if (c.controller_addresses) {
           // Every address the controller may answer at, not only the one resolved at start:
           // a name with several records, a session that reached it by another one.
           std::set<std::uint16_t> ports{c.controller.port};
           for (const auto& other : c.other_controllers) ports.insert(other.port);
           for (const auto& address : c.controller_addresses()) {
             for (const auto port : ports) {
               const platform::AllowedPeer peer{address, port, "tcp"};
               const bool known = std::any_of(
                   spec.allow.begin(), spec.allow.end(), [&](const platform::AllowedPeer& a) {
                     return a.address == peer.address && a.port == peer.port;
                   });
               if (!known && !(c.controller.address == address && c.controller.port == port))
                 spec.allow.push_back(peer);
             }
           }
         }
         if (auto s = platform::validate(spec); !s) return refused(s.error().message);
         std::optional<std::int64_t> release_at;
         if (p.release_after_seconds() > 0)
           release_at = c.clock.now_unix_ms() + p.release_after_seconds() * 1000LL;
         const auto before = c.quarantine.current();
         auto enforced = c.quarantine.quarantine(spec, release_at, action_id);
         if (!enforced) return failed(enforced.error().message);
         if (c.controller_round_trip && !c.controller_round_trip(kQuarantineProofTimeout)) {
           // Cut off from every controller, the host could never be released by one: undo it.
           Status undone = ok_status();
           if (before) {
             auto back =
                 c.quarantine.quarantine(before->spec, before->release_at_ms, before->action_id);
             if (!back) undone = back.error();
           } else {
             undone = c.quarantine.release();
           }
           return failed(fmt::format(
               "quarantine reverted: controller unreachable (no answer over the session within "
               "{} s after the rules were applied){}",
               kQuarantineProofTimeout.count() / 1000,
               undone ? (before ? "; the previous quarantine is back" : "")
                      : "; UNDOING IT FAILED: " + undone.error().message));
         }
         proto::QuarantineResult r;
         for (const auto& hook : enforced->hooks) r.add_enforced_hooks(hook);
         return done(r);
       }},
      {ak::kNetworkRelease,
       [&] {
         if (auto s = c.quarantine.release(); !s) return failed(s.error().message);
         return done(proto::Empty{});
       }},
      {ak::kNetworkStatus,
       [&] {
         proto::NetworkStatusResult r;
         auto active = c.quarantine.current();
         auto enforced = c.quarantine.enforced();
         if (!enforced) return failed(enforced.error().message);
         r.set_intended(active.has_value());
         r.set_quarantined(enforced->complete());
         for (const auto& hook : enforced->hooks) r.add_enforced_hooks(hook);
         if (active) {
           for (const auto& peer : active->spec.allow) {
             auto* e = r.add_allowed();
             e->set_address(peer.address);
             e->set_port(peer.port);
             e->set_protocol(peer.protocol);
           }
           r.set_release_at_unix_ms(active->release_at_ms.value_or(0));
         }
         return done(r);
       }},
      {ak::kNetworkConnections,
       [&] {
         proto::ConnectionsParams p;
         if (!parse(p)) return failed("parameters are not a ConnectionsParams message");
         auto current = c.network.connections();
         if (!current) return failed(current.error().message);
         proto::ConnectionsResult r;
         for (const auto& k : *current) {
           auto* e = r.add_current();
           e->set_protocol(k.protocol);
           e->set_local_address(k.local_address);
           e->set_local_port(k.local_port);
           e->set_remote_address(k.remote_address);
           e->set_remote_port(k.remote_port);
           e->set_state(k.state);
           e->set_pid(k.pid);
           e->set_process(k.process);
         }
         if (!p.history_address().empty()) {
           const auto days = p.history_days() == 0 ? 30 : p.history_days();
           auto seen =
               c.history.contacts(p.history_address(), c.clock.now_unix_ms() - days * 86'400'000LL);
           if (!seen) return failed(seen.error().message);
           for (const auto& s : *seen) {
             auto* e = r.add_history();
             e->set_remote_address(s.remote_address);
             e->set_remote_port(s.remote_port);
             e->set_protocol(s.protocol);
             e->set_pid(s.pid);
             e->set_process(s.process);
             e->set_first_seen_unix_ms(s.first_seen_ms);
             e->set_last_seen_unix_ms(s.last_seen_ms);
           }
         }
         return done(r);
       }},
      {ak::kFileHash,
       [&] {
         proto::FileParams p;
         if (!parse(p) || (p.path().empty() && !p.has_process()))
           return failed("parameters are not a FileParams with a path or a process");
         platform::ProcessRef process;
         if (auto stop = file_process(p, &process)) return std::move(*stop);
         Sha256Sink sha;
         auto info = stream_file(p, process, sha, 0);
         if (!info) return failed(info.error().message);
         auto r = file_result(*info);
         r.set_sha256(sha.hex_digest());
         return done(r);
       }},
      {ak::kFileCollect,
       [&] {
         proto::FileParams p;
         if (!parse(p) || (p.path().empty() && !p.has_process()))
           return failed("parameters are not a FileParams with a path or a process");
         platform::ProcessRef process;
         if (auto stop = file_process(p, &process)) return std::move(*stop);
         if (budget < kMinEvidenceRoom) return spool_full(budget);
         const std::uint64_t limit = p.max_bytes() == 0 ? (1ULL << 30) : p.max_bytes();
         const auto path = c.evidence_dir / safe_name(action_id, ".collected");
         auto sink = EvidenceFile::create(path);
         if (!sink) return failed(sink.error().message);
         auto info = stream_file(p, process, **sink, std::min(limit, budget));
         auto sha = (*sink)->finish();
         if (!info) {
           std::error_code ignored;
           std::filesystem::remove(path, ignored);
           return failed(budget < limit ? fmt::format("{} (the evidence spool has {} bytes free)",
                                                      info.error().message, budget)
                                        : info.error().message);
         }
         if (!sha) return failed(sha.error().message);
         add_evidence(path, *sha, info->size);
         auto r = file_result(*info);
         r.set_sha256(*sha);
         r.set_evidence_path(path.string());
         return done(r);
       }},
      {ak::kFileQuarantine,
       [&] {
         proto::FileParams p;
         if (!parse(p) || p.path().empty())
           return failed("parameters are not a FileParams with a path");
         auto path = os_path(p.path());
         if (!path) return failed(path.error().message);
         Sha256Sink sha;
         const auto id = safe_name(action_id, "");
         auto entry = c.files.quarantine(*path, c.vault_dir, id, &sha);
         if (!entry) return failed(entry.error().message);
         auto r = file_result(entry->original);
         r.set_sha256(sha.hex_digest());
         r.set_vault_id(id);
         // The record restore() needs lives beside the file in the vault, its paths as wire text
         // (a `string` that is not UTF-8 would not parse back).
         auto record = r;
         escape_text_fields(record);
         if (auto s = write_file_atomic(c.vault_dir / (id + ".record"), record.SerializeAsString(),
                                        0600);
             !s) {
           return failed(fmt::format("file is in the vault as {}, but its record was not saved: {}",
                                     id, s.error().message));
         }
         return done(r);
       }},
      {ak::kFileRestore,
       [&] {
         proto::FileRestoreParams p;
         if (!parse(p) || p.vault_id().empty() || p.vault_id().find('/') != std::string::npos) {
           return failed("parameters are not a FileRestoreParams with a vault id");
         }
         std::ifstream in(c.vault_dir / (p.vault_id() + ".record"), std::ios::binary);
         proto::FileResult record;
         if (!in || !record.ParseFromIstream(&in))
           return failed(fmt::format("no vault record for {}", p.vault_id()));
         auto original = os_path(record.path());
         auto resolved = os_path(record.resolved_path());
         if (!original || !resolved)
           return failed(fmt::format("the vault record for {} is damaged", p.vault_id()));
         platform::VaultEntry entry{p.vault_id(),
                                    {*original, *resolved, record.size(), record.mode(),
                                     record.uid(), record.gid(), record.mtime_unix_ms()}};
         auto restored = c.files.restore(entry, c.vault_dir, p.keep_setid());
         if (!restored) return failed(restored.error().message);
         std::filesystem::remove(c.vault_dir / (p.vault_id() + ".record"));
         auto r = file_result(*restored);
         r.set_sha256(record.sha256());
         r.set_vault_id(p.vault_id());
         return done(r);
       }},
      {ak::kYaraScan,
       [&] {
         proto::YaraScanParams p;
         if (!parse(p)) return failed("parameters are not a YaraScanParams message");
         if (p.paths().empty() && !p.has_process())
           return failed("yara.scan needs paths or a process");
         // Rules named by hash come from the cache (fetched from the controller once); inline
         // rules, as older controllers send them, are compiled for this scan only.
         auto rules = p.rules_sha256().empty()
                          ? platform::YaraRules::compile(p.rules())
                          : rule_sets_.get(p.rules_sha256(), p.rules_size());
         if (!rules) return failed(rules.error().message);
         platform::YaraScanOptions options;
         if (p.timeout_seconds() > 0)
           options.timeout_seconds = static_cast<int>(p.timeout_seconds());
         options.progress = [&](std::uint64_t done, std::uint64_t total) {
           report_progress(done, total, "files");
         };
         std::vector<platform::YaraScanReport> reports;
         for (const auto& wire : p.paths()) {
           auto path = os_path(wire);
           if (!path) return failed(path.error().message);
           auto report = c.yara.scan_path(**rules, *path, options);
           if (!report) return failed(report.error().message);
           reports.push_back(std::move(*report));
         }
         if (p.has_process()) {
           platform::ProcessRef target;
           if (auto stop = target_process(p.process(), &target)) return std::move(*stop);
           auto report = c.yara.scan_process(**rules, target, options);
           if (!report) return failed(report.error().message);
           reports.push_back(std::move(*report));
         }
         proto::YaraScanResult r;
         for (const auto& report : reports) {
           r.set_bytes_scanned(r.bytes_scanned() + report.bytes_scanned);
           r.set_timed_out(r.timed_out() || report.timed_out);
           for (const auto& e : report.errors) r.add_errors(e);
           for (const auto& m : report.matches) {
             auto* out = r.add_matches();
             out->set_rule(m.rule);
             out->set_namespace_(m.rule_namespace);
             out->set_target(m.target);
             for (const auto& t : m.tags) out->add_tags(t);
             for (const auto& [k, v] : m.metadata) (*out->mutable_metadata())[k] = v;
             for (const auto& s : m.strings) {
               auto* str = out->add_strings();
               str->set_identifier(s.identifier);
               str->set_offset(s.offset);
               str->set_length(s.length);
               str->set_data(s.data);
             }
           }
         }
         return done(r);
       }},
      {ak::kHostLogins,
       [&] {
         proto::LoginsParams p;
         if (!parse(p)) return failed("parameters are not a LoginsParams message");
         auto current = c.logins.current();
         auto recent = c.logins.recent(p.recent_limit() == 0 ? 50 : p.recent_limit());
         if (!current) return failed(current.error().message);
         if (!recent) return failed(recent.error().message);
         proto::LoginsResult r;
         for (auto [list, target] :
              {std::pair{&*current, r.mutable_current()}, {&*recent, r.mutable_recent()}}) {
           for (const auto& l : *list) {
             auto* e = target->Add();
             e->set_user(l.user);
             e->set_terminal(l.terminal);
             e->set_host(l.host);
             e->set_pid(l.pid);
             e->set_time_unix_ms(l.time_unix_ms);
             e->set_active(l.active);
           }
         }
         return done(r);
       }},
      {ak::kHostFacts,
       [&] {
         auto r = to_proto(c.facts.collect());
         return done(r);
       }},
  };

  proto::ActionResult result;
  result.set_action_id(action_id);
  result.set_started_at_unix_ms(c.clock.now_unix_ms());
  Outcome outcome;
  if (auto it = handlers.find(kind); it == handlers.end()) {
    outcome = refused(fmt::format("unknown action kind '{}'", kind));
    outcome.refusal = proto::ActionResult::REFUSAL_KIND_NOT_ALLOWED;
  } else {
    try {
      outcome = it->second();
    } catch (const std::exception& e) {
      outcome = failed(fmt::format("internal error: {}", e.what()));
    }
  }
  result.set_finished_at_unix_ms(c.clock.now_unix_ms());
  if (outcome.result) {
    // What the OS said (names, command lines, paths) leaves as wire text, escaped once, here.
    escape_text_fields(*outcome.result);
    bound_text_fields(*outcome.result, kMaxResultTextBytes);
    if (const auto size = outcome.result->ByteSizeLong(); size > kMaxResultBytes) {
      outcome =
          failed(fmt::format("the result is {} bytes, over the {} an action's result may "
                             "hold; nothing was sent",
                             size, kMaxResultBytes));
      produced.clear();
    }
  }
  if (outcome.result) {
    result.set_status(proto::ActionResult::STATUS_SUCCEEDED);
    result.set_output(outcome.result->SerializeAsString());
    if (!resolved_note.empty()) result.set_message(utf8_prefix(to_wire_text(resolved_note), 4096));
    for (auto& e : produced) *result.add_evidence() = std::move(e);
  } else {
    result.set_status(outcome.refused ? proto::ActionResult::STATUS_REJECTED
                                      : proto::ActionResult::STATUS_FAILED);
    if (outcome.refused) result.set_refusal(outcome.refusal);
    // Errors quote paths and names: raw ones from the OS are escaped, the wire text of a parameter
    // they quote is left as it is (escaping it again would show a different name).
    result.set_message(
        utf8_prefix(is_utf8(outcome.error) ? outcome.error : to_wire_text(outcome.error), 4096));
  }
  return result;
}

}  // namespace riposte::agent
