#include "controller/api/console_files.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <fstream>
#include <sstream>

namespace riposte::controller {

namespace {

constexpr std::uintmax_t kMaxConsoleBytes = 64ull * 1024 * 1024;

std::string content_type_of(const std::filesystem::path& file) {
  const auto ext = file.extension().string();
  if (ext == ".html") return "text/html; charset=utf-8";
  if (ext == ".js") return "text/javascript; charset=utf-8";
  if (ext == ".css") return "text/css; charset=utf-8";
  if (ext == ".svg") return "image/svg+xml";
  if (ext == ".png") return "image/png";
  if (ext == ".ico") return "image/x-icon";
  if (ext == ".json" || ext == ".map") return "application/json";
  if (ext == ".txt") return "text/plain; charset=utf-8";
  return "application/octet-stream";
}

}  // namespace

ConsoleFiles::ConsoleFiles(std::filesystem::path root) : root_(std::move(root)) {
  std::error_code ec;
  if (root_.empty() || !std::filesystem::is_regular_file(root_ / "index.html", ec)) {
    spdlog::info("web console: not installed ({} has no index.html); /ui/ answers 404",
                 root_.string());
    return;
  }
  std::uintmax_t total = 0;
  for (auto it = std::filesystem::recursive_directory_iterator(root_, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    if (!it->is_regular_file(ec)) continue;
    total += it->file_size(ec);
    if (total > kMaxConsoleBytes) {
      spdlog::error("web console: {} holds more than {} bytes; not served", root_.string(),
                    kMaxConsoleBytes);
      files_.clear();
      return;
    }
    std::ifstream in(it->path(), std::ios::binary);
    std::ostringstream bytes;
    bytes << in.rdbuf();
    const auto relative = it->path().lexically_relative(root_).generic_string();
    files_.emplace("/ui/" + relative, File{content_type_of(it->path()), bytes.str()});
  }
  if (ec) {
    spdlog::error("web console: cannot read {}: {}", root_.string(), ec.message());
    files_.clear();
    return;
  }
  spdlog::info("web console: {} files from {}", files_.size(), root_.string());
}

ApiResponse ConsoleFiles::serve(std::string_view path) const {
  if (files_.empty()) {
    return error_response(
        404, fmt::format("the web console is not installed on this controller (looked in {})",
                         root_.string()));
  }
  if (path == "/ui") return redirect_response(301, "/ui/");
  auto it = files_.find(path);
  // A path without a file is one of the app's own pages; a missing asset is a 404.
  const auto last = path.substr(path.rfind('/') + 1);
  if (it == files_.end() && last.find('.') == std::string_view::npos)
    it = files_.find(std::string_view("/ui/index.html"));
  if (it == files_.end()) return error_response(404, "no such file in the web console");
  ApiResponse r;
  r.body = it->second.bytes;
  r.content_type = it->second.content_type;
  r.headers.emplace_back("Content-Security-Policy", std::string(kConsoleContentSecurityPolicy));
  return r;
}

}  // namespace riposte::controller
