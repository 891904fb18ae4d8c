// libFuzzer target for playbook files: whatever YAML a playbook directory holds, load_playbook
// returns a playbook or an error naming the file and line, never crashes, throws or hangs. The
// input is written to a file in a private directory under /dev/shm.
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>

#include "controller/playbooks/playbook.h"

namespace fs = std::filesystem;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const fs::path dir = [] {
    auto d = fs::path("/dev/shm") / ("riposte-fuzz-playbook-" + std::to_string(::getpid()));
    fs::create_directories(d);
    return d;
  }();
  const auto file = dir / "playbook.yaml";
  std::ofstream(file, std::ios::binary | std::ios::trunc)
      .write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  auto loaded = riposte::controller::load_playbook(file);
  if (!loaded && loaded.error().message.empty()) __builtin_trap();  // every error says what
  return 0;
}
