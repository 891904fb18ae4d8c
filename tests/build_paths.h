#pragma once

// Where tests find the checkout and the programs of this build. Defined in a source file CMake
// generates into the build directory (tests/CMakeLists.txt), not as compiler definitions: then
// only that one file differs between two clones of the repository, and every test source
// compiles to the same bytes in any clone, so ccache serves them.

namespace riposte::testing {

const char* source_dir();      // the repository's root
const char* bin_dir();         // build/<preset>/bin: riposte-controller, riposte-agent, riposte
const char* capture_target();  // the process memory-capture tests act on

}  // namespace riposte::testing
