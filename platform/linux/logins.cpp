#include "platform/logins.h"

#include <fmt/format.h>
#include <utmpx.h>

#include <algorithm>
#include <fstream>

namespace riposte::platform {

namespace {

// utmp(5) records are fixed-size structs on disk; reading the file directly (rather than through
// getutxent, which keeps process-global state) is thread-safe and works on any file.
Result<std::vector<utmpx>> read_records(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::vector<utmpx>{};  // no file: nobody logged in, not an error
  std::vector<utmpx> records;
  utmpx record{};
  while (in.read(reinterpret_cast<char*>(&record), sizeof(record))) records.push_back(record);
  if (!in.eof()) return Error{fmt::format("cannot read {}", path)};
  return records;
}

std::string field(const char* data, std::size_t size) {
  return std::string(data, strnlen(data, size));
}

LoginRecord to_login(const utmpx& r, bool active) {
  return LoginRecord{field(r.ut_user, sizeof(r.ut_user)),
                     field(r.ut_line, sizeof(r.ut_line)),
                     field(r.ut_host, sizeof(r.ut_host)),
                     r.ut_pid,
                     static_cast<std::int64_t>(r.ut_tv.tv_sec) * 1000 + r.ut_tv.tv_usec / 1000,
                     active};
}

class UtmpLogins final : public Logins {
 public:
  UtmpLogins(std::string utmp, std::string wtmp) : utmp_(std::move(utmp)), wtmp_(std::move(wtmp)) {}

  Result<std::vector<LoginRecord>> current() override {
    auto records = read_records(utmp_);
    if (!records) return records.error();
    std::vector<LoginRecord> out;
    for (const auto& r : *records) {
      if (r.ut_type == USER_PROCESS) out.push_back(to_login(r, true));
    }
    return out;
  }

  Result<std::vector<LoginRecord>> recent(std::size_t limit) override {
    auto records = read_records(wtmp_);
    if (!records) return records.error();
    std::vector<LoginRecord> out;
    for (auto it = records->rbegin(); it != records->rend() && out.size() < limit; ++it) {
      if (it->ut_type == USER_PROCESS) out.push_back(to_login(*it, false));
    }
    return out;
  }

 private:
  std::string utmp_, wtmp_;
};

}  // namespace

std::unique_ptr<Logins> make_logins(std::string utmp_path, std::string wtmp_path) {
  return std::make_unique<UtmpLogins>(std::move(utmp_path), std::move(wtmp_path));
}

}  // namespace riposte::platform
