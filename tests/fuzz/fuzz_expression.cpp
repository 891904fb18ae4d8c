// libFuzzer target for the playbook expression language and templates: whatever text a playbook
// holds, parsing and evaluating it must return a value or an error, never crash or throw.
//   clang++-14 -std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined -I. \
//     tests/fuzz/fuzz_expression.cpp controller/playbooks/expression.cpp -lfmt -o
//     /tmp/fuzz_expression
//   /tmp/fuzz_expression -max_total_time=120 -max_len=256
#include <cstdint>
#include <string_view>

#include "controller/playbooks/expression.h"
using namespace riposte::controller;
static const nlohmann::json kContext = nlohmann::json::parse(
    R"({"alert":{"host":{"name":"web"},"pid":4,"list":[1,"a",null]},"observables":[{"type":"ip","value":"1.2.3.4"}]})");
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  if (auto e = Expression::parse(text)) {
    (void)e->evaluate(kContext);
    (void)e->roots();
  }
  if (auto t = Template::parse(text)) {
    (void)t->render(kContext);
    (void)t->render_value(kContext);
  }
  return 0;
}
