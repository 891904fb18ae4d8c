// A process for memory-capture tests: a known global (for gdb), a marker string on the heap (for
// byte searches), and a large-ish anonymous region; it says "ready" on stdout, then waits.

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

// Initialised in the binary, changed at run time: gdb can only show the run-time value if it read
// it from the core, not from the executable's .data.
volatile unsigned long riposte_capture_global = 0x1111111111111111UL;

int main(int argc, char** argv) {
  const std::size_t megabytes = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 4;
  riposte_capture_global = 0x5EC0DE0000000000UL | static_cast<unsigned long>(::getpid());
  const char marker[] = "RIPOSTE-MEMORY-MARKER-7f3a9c";
  auto* heap = static_cast<char*>(std::malloc(megabytes << 20));
  for (std::size_t i = 0; i < (megabytes << 20); i += 4096) heap[i] = static_cast<char>(i >> 12);
  std::memcpy(heap + (megabytes << 19), marker, sizeof(marker));
  std::printf("ready %p\n", static_cast<void*>(heap));
  std::fflush(stdout);
  for (;;) ::pause();
}
