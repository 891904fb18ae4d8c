// libFuzzer target for the feed readers: whatever a feed file holds, load_feed returns contents or
// an error naming the problem, never crashes, throws or hangs. The format is the environment's
// RIPOSTE_FUZZ_FORMAT: csv, list, misp or stix (scripts/fuzz.sh runs each). The input is written
// to a file in a private directory under /dev/shm (for misp: one event, listed in a manifest).
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "controller/intel/feeds.h"

using namespace riposte::controller;
namespace fs = std::filesystem;

namespace {

const fs::path& work_dir() {
  static const fs::path dir = [] {
    auto d = fs::path("/dev/shm") / ("riposte-fuzz-feed-" + std::to_string(::getpid()));
    fs::create_directories(d);
    return d;
  }();
  return dir;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string format =
      std::getenv("RIPOSTE_FUZZ_FORMAT") != nullptr ? std::getenv("RIPOSTE_FUZZ_FORMAT") : "csv";
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  FeedConfig feed{"fuzz", work_dir() / "feed", format, 1.0, ""};
  if (format == "misp") {
    fs::create_directories(feed.path);
    const std::string uuid = "5f0c1b2a-1111-4c3d-9e8f-0a1b2c3d4e5f";
    std::ofstream(feed.path / "manifest.json") << "{\"" << uuid << "\": {\"info\": \"fuzz\"}}";
    std::ofstream(feed.path / (uuid + ".json"), std::ios::binary) << bytes;
  } else {
    std::ofstream(feed.path, std::ios::binary) << bytes;
  }
  (void)load_feed(feed, 1'790'000'000'000);
  return 0;
}
