#include "platform/memory_capture.h"

#include <elf.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <sys/procfs.h>
#include <sys/ptrace.h>
#include <sys/uio.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <set>
#include <sstream>

#include "platform/linux/procfs.h"

namespace riposte::platform {

namespace {

using linux_impl::Mapping;
using linux_impl::read_maps;
using linux_impl::read_proc_file;
using linux_impl::StoppedProcess;
constexpr std::uint64_t kPage = 4096;
constexpr std::size_t kChunk = 1 << 20;  // read and write 1 MiB at a time

void append_note(std::string& notes, std::uint32_t type, const char* name, const void* desc,
                 std::size_t desc_size) {
  auto pad4 = [&](std::size_t n) { notes.append((4 - n % 4) % 4, '\0'); };
  Elf64_Nhdr header{static_cast<Elf64_Word>(std::strlen(name) + 1),
                    static_cast<Elf64_Word>(desc_size), type};
  notes.append(reinterpret_cast<const char*>(&header), sizeof(header));
  notes.append(name, header.n_namesz);
  pad4(header.n_namesz);
  notes.append(static_cast<const char*>(desc), desc_size);
  pad4(desc_size);
}

std::string build_notes(pid_t pid, const std::vector<pid_t>& threads,
                        const std::vector<Mapping>& maps, int* thread_notes) {
  std::string notes;
  const auto stat = linux_impl::read_stat(pid);
  for (pid_t tid : threads) {
    user_regs_struct regs{};
    if (::ptrace(PTRACE_GETREGS, tid, nullptr, &regs) != 0) continue;
    elf_prstatus status{};
    status.pr_pid = tid;
    status.pr_ppid = stat ? stat->ppid : 0;
    static_assert(sizeof(status.pr_reg) == sizeof(regs));
    std::memcpy(&status.pr_reg, &regs, sizeof(regs));
    append_note(notes, NT_PRSTATUS, "CORE", &status, sizeof(status));
    ++*thread_notes;
  }

  elf_prpsinfo info{};
  info.pr_pid = pid;
  if (stat) {
    info.pr_ppid = stat->ppid;
    info.pr_sname = stat->state;
    std::strncpy(info.pr_fname, stat->comm.c_str(), sizeof(info.pr_fname) - 1);
  }
  auto cmdline = read_proc_file(fmt::format("/proc/{}/cmdline", pid));
  std::replace(cmdline.begin(), cmdline.end(), '\0', ' ');
  std::strncpy(info.pr_psargs, cmdline.c_str(), sizeof(info.pr_psargs) - 1);
  append_note(notes, NT_PRPSINFO, "CORE", &info, sizeof(info));

  // The auxiliary vector tells a debugger where a position-independent executable was loaded.
  const auto auxv = read_proc_file(fmt::format("/proc/{}/auxv", pid));
  if (!auxv.empty()) append_note(notes, NT_AUXV, "CORE", auxv.data(), auxv.size());

  // NT_FILE: which file each file-backed mapping came from.
  std::vector<std::uint64_t> table;
  std::string names;
  for (const auto& m : maps) {
    if (m.path.empty() || m.path[0] != '/') continue;
    table.insert(table.end(), {m.start, m.end, m.offset / kPage});
    names += m.path;
    names.push_back('\0');
  }
  std::string file_note;
  const std::uint64_t header[2] = {table.size() / 3, kPage};
  file_note.append(reinterpret_cast<const char*>(header), sizeof(header));
  file_note.append(reinterpret_cast<const char*>(table.data()),
                   table.size() * sizeof(std::uint64_t));
  file_note += names;
  append_note(notes, NT_FILE, "CORE", file_note.data(), file_note.size());
  return notes;
}

Elf64_Word segment_flags(const std::string& perms) {
  Elf64_Word flags = 0;
  if (perms.size() >= 3) {
    if (perms[0] == 'r') flags |= PF_R;
    if (perms[1] == 'w') flags |= PF_W;
    if (perms[2] == 'x') flags |= PF_X;
  }
  return flags;
}

// process_vm_readv copies straight from the target's pages, markedly faster than /proc/PID/mem;
// the latter stays as the fallback (and for page-by-page retries).
ssize_t read_remote(pid_t pid, int mem, std::uint64_t at, void* into, std::size_t size) {
  iovec local{into, size};
  iovec remote{reinterpret_cast<void*>(at), size};
  const ssize_t n = ::process_vm_readv(pid, &local, 1, &remote, 1, 0);
  if (n == static_cast<ssize_t>(size)) return n;
  return ::pread(mem, into, size, static_cast<off_t>(at));
}

class LinuxMemoryCapture final : public MemoryCapture {
 public:
  Result<CaptureReport> capture(const ProcessRef& target, ByteSink& out,
                                const CaptureOptions& options) override {
    auto pidfd = linux_impl::open_verified(target);
    if (!pidfd) return pidfd.error();
    const pid_t pid = target.pid;

    StoppedProcess stopped(pid);
    CaptureReport report;
    report.registers_captured = stopped.complete();
    // Without ptrace (already traced, or not permitted) the capture still proceeds, racing the
    // process; the report says registers are missing.
    const bool sigstopped =
        !stopped.complete() && ::pidfd_send_signal((*pidfd)->get(), SIGSTOP, nullptr, 0) == 0;
    // Whatever ends the capture (a failed write, memory that cannot be opened), a process we
    // stopped is continued: leaving a production service frozen would be worse than no capture.
    struct ContinueOnExit {
      int pidfd;
      bool active;
      ~ContinueOnExit() {
        if (active) ::pidfd_send_signal(pidfd, SIGCONT, nullptr, 0);
      }
    } continue_on_exit{(*pidfd)->get(), sigstopped};

    auto maps = read_maps(pid);
    if (maps.empty()) return Error{fmt::format("cannot read the memory map of {}", pid)};
    std::uint64_t budget = options.max_bytes == 0 ? UINT64_MAX : options.max_bytes;
    for (auto& m : maps) {
      const bool file_backed = !m.path.empty() && m.path[0] == '/';
      if (m.perms.empty() || m.perms[0] != 'r') {
        m.skip_reason = "not readable";
      } else if (m.path == "[vvar]" || m.path == "[vsyscall]") {
        m.skip_reason = "not readable";  // kernel pages that /proc/PID/mem refuses
      } else if (file_backed && !options.include_file_backed) {
        m.skip_reason = "excluded: file-backed";
      } else if (m.end - m.start > budget) {
        m.skip_reason = "max size reached";
        budget = 0;
      } else {
        m.write_data = true;
        budget -= m.end - m.start;
      }
      if (!m.write_data) report.skipped.push_back({m.start, m.end, m.path, m.skip_reason});
    }

    const std::string notes = build_notes(pid, stopped.threads(), maps, &report.threads);

    // Layout: ELF header, program headers, notes, then page-aligned segment data in map order.
    const std::size_t phnum = 1 + maps.size();
    const std::uint64_t notes_offset = sizeof(Elf64_Ehdr) + phnum * sizeof(Elf64_Phdr);
    std::uint64_t data_offset = (notes_offset + notes.size() + kPage - 1) / kPage * kPage;

    Elf64_Ehdr ehdr{};
    std::memcpy(ehdr.e_ident, ELFMAG, SELFMAG);
    ehdr.e_ident[EI_CLASS] = ELFCLASS64;
    ehdr.e_ident[EI_DATA] = ELFDATA2LSB;
    ehdr.e_ident[EI_VERSION] = EV_CURRENT;
    ehdr.e_ident[EI_OSABI] = ELFOSABI_NONE;
    ehdr.e_type = ET_CORE;
    ehdr.e_machine = EM_X86_64;
    ehdr.e_version = EV_CURRENT;
    ehdr.e_phoff = sizeof(Elf64_Ehdr);
    ehdr.e_ehsize = sizeof(Elf64_Ehdr);
    ehdr.e_phentsize = sizeof(Elf64_Phdr);
    ehdr.e_phnum = static_cast<Elf64_Half>(phnum);

    std::vector<Elf64_Phdr> phdrs;
    phdrs.push_back(Elf64_Phdr{PT_NOTE, 0, notes_offset, 0, 0, notes.size(), 0, 0});
    for (const auto& m : maps) {
      const std::uint64_t size = m.end - m.start;
      Elf64_Phdr ph{PT_LOAD, segment_flags(m.perms),  data_offset, m.start,
                    0,       m.write_data ? size : 0, size,        kPage};
      if (m.write_data) data_offset += size;
      phdrs.push_back(ph);
    }

    auto write = [&](const void* data, std::size_t size) -> Status {
      report.bytes_written += size;
      return out.write(std::span(static_cast<const std::uint8_t*>(data), size));
    };
    if (auto s = write(&ehdr, sizeof(ehdr)); !s) return s.error();
    if (auto s = write(phdrs.data(), phdrs.size() * sizeof(Elf64_Phdr)); !s) return s.error();
    if (auto s = write(notes.data(), notes.size()); !s) return s.error();
    const std::string padding(
        phdrs.size() > 1 ? phdrs[1].p_offset - notes_offset - notes.size() : 0, '\0');
    if (auto s = write(padding.data(), padding.size()); !s) return s.error();

    const int mem = ::open(fmt::format("/proc/{}/mem", pid).c_str(), O_RDONLY | O_CLOEXEC);
    if (mem < 0)
      return Error{fmt::format("cannot open memory of {}: {}", pid, std::strerror(errno))};
    std::vector<std::uint8_t> own_buffer(kChunk);
    Status status = ok_status();
    for (const auto& m : maps) {
      if (!m.write_data || !status) continue;
      ++report.mappings;
      std::size_t want = 0;
      for (std::uint64_t at = m.start; at < m.end && status; at += want) {
        want = static_cast<std::size_t>(std::min<std::uint64_t>(kChunk, m.end - at));
        // Read into the sink's own buffer when it lends one (no copy); a loan may be shorter.
        std::uint8_t* into = own_buffer.data();
        if (const auto loan = out.lend(want); loan.size() >= kPage) {
          into = loan.data();
          want = loan.size() / kPage * kPage;
        }
        if (read_remote(pid, mem, at, into, want) != static_cast<ssize_t>(want)) {
          read_page_by_page(mem, at, want, into, m.path, report);
        }
        status = write(into, want);
        report.memory_bytes += want;
        if (options.progress) options.progress(report.bytes_written, data_offset);
      }
    }
    ::close(mem);
    if (!status) return status.error();
    return report;
  }

 private:
  // A chunk with unreadable pages: keep what reads, zero the rest, and say where.
  static void read_page_by_page(int mem, std::uint64_t at, std::size_t size,
                                std::uint8_t* buffer, const std::string& path,
                                CaptureReport& report) {
    for (std::size_t off = 0; off < size; off += kPage) {
      if (::pread(mem, buffer + off, kPage, static_cast<off_t>(at + off)) ==
          static_cast<ssize_t>(kPage))
        continue;
      std::memset(buffer + off, 0, kPage);
      if (!report.skipped.empty() && report.skipped.back().end == at + off &&
          report.skipped.back().reason == "read failed") {
        report.skipped.back().end += kPage;
      } else {
        report.skipped.push_back({at + off, at + off + kPage, path, "read failed"});
      }
    }
  }
};

}  // namespace

std::unique_ptr<MemoryCapture> make_memory_capture() {
  return std::make_unique<LinuxMemoryCapture>();
}

}  // namespace riposte::platform
