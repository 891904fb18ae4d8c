#pragma once

// The web console's files (web/, built by esbuild and installed under /usr/share/riposte/web),
// served at /ui/. They are read once at start into memory: a request can only name a file that
// was there then (no path is ever joined from request text, so no traversal), and a console
// upgrade takes a controller restart, like the controller's own code.
//
// /ui/ and any /ui/... path that names no file (a deep link such as /ui/cases/ID) answer
// index.html: the single-page app reads the path and shows that object.

#include <filesystem>
#include <map>
#include <string>
#include <string_view>

#include "controller/api/router_types.h"

namespace riposte::controller {

// The policy every console page is served with: only the console's own scripts, styles and
// API; no inline script or style, no plugins, not framed, forms post only here.
inline constexpr std::string_view kConsoleContentSecurityPolicy =
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'";

class ConsoleFiles {
 public:
  // Reads the files under `root` (at most 64 MiB in all). A missing root leaves the console
  // off: /ui/ answers 404 saying where it looked.
  explicit ConsoleFiles(std::filesystem::path root);

  bool installed() const { return !files_.empty(); }
  const std::filesystem::path& root() const { return root_; }
  // The answer to GET `path` (which starts with "/ui").
  ApiResponse serve(std::string_view path) const;

 private:
  struct File {
    std::string content_type;
    std::string bytes;
  };
  std::filesystem::path root_;
  std::map<std::string, File, std::less<>> files_;  // "/ui/app.js" -> file
};

}  // namespace riposte::controller
