// libFuzzer target for the daemons' configuration files: whatever YAML an admin (or a bad
// deployment template) writes, load_controller_config (RIPOSTE_FUZZ_FORMAT=controller) and
// load_agent_config (=agent) return a configuration or an error naming the file and the
// problem, never crash, throw or hang. The input is written to a file in a private directory
// under /dev/shm (relative paths in it resolve there).
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "agent/agent_config.h"
#include "controller/config.h"

namespace fs = std::filesystem;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const fs::path dir = [] {
    auto d = fs::path("/dev/shm") / ("riposte-fuzz-config-" + std::to_string(::getpid()));
    fs::create_directories(d);
    return d;
  }();
  static const bool agent = [] {
    const char* format = std::getenv("RIPOSTE_FUZZ_FORMAT");
    return format != nullptr && std::string(format) == "agent";
  }();
  const auto file = dir / "config.yaml";
  std::ofstream(file, std::ios::binary | std::ios::trunc)
      .write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  if (agent) {
    auto loaded = riposte::agent::load_agent_config(file);
    if (!loaded && loaded.error().message.empty()) __builtin_trap();  // every error says what
  } else {
    auto loaded = riposte::controller::load_controller_config(file);
    if (!loaded && loaded.error().message.empty()) __builtin_trap();
  }
  return 0;
}
